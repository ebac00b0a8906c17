// File operations: typed steps on the runtime's FileWorld, each operation one offloaded job whose result is the input.
#include "reprise/io/file.hpp"

#include "reprise/io/file_world.hpp"
#include "reprise/io/internal/private_dirs.hpp"
#include "reprise/runtime/internal/core.hpp"

#include "reprise/io/offload.hpp"
#include "reprise/runtime/limits.hpp"

#include <cerrno>
#include <fcntl.h>
#include <filesystem>
#include <sys/stat.h>
#include <unistd.h>

namespace reprise {

namespace detail {
/// An open file: the world that opened it and its token there. Closed when the File and
/// every operation in flight on it are gone.
struct FileCore {
    std::string path;
    std::shared_ptr<FileWorld> world;
    FileToken token = -1;
    ~FileCore() {
        if (token >= 0)
            world->close(token);
    }
};

int make_private_directories(const std::string& path) noexcept {
    // Each prefix that ends a component, shortest first; one that exists (a folder) is kept.
    for (std::size_t end = 1; end <= path.size(); ++end) {
        if (end < path.size() && path[end] != '/')
            continue;
        if (path[end - 1] == '/')
            continue;  // "//", or the root
        const std::string prefix = path.substr(0, end);
        if (::mkdir(prefix.c_str(), 0700) == 0)
            continue;
        const int error = errno;
        struct stat st {};
        if (error == EEXIST && ::stat(prefix.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
            continue;
        return error == EEXIST ? ENOTDIR : error;
    }
    return 0;
}
} // namespace detail

namespace {

Error last_error() { return error_from_errno(errno); }

// The world the current runtime's file steps act on.
std::shared_ptr<FileWorld> world_of(const char* operation) {
    return detail::current_runtime(operation).backend->file_world();
}

// Runs a file operation (a sequence of steps) on the pool; its own Result comes back to the task.
template <class F>
auto on_pool(Deadline deadline, F&& fn) -> std::invoke_result_t<F> {
    auto r = offload(std::forward<F>(fn), deadline);
    if (!r.ok())
        return r.error();
    return std::move(*r);
}

// Opens, does `body` with the token, closes: the steps of the whole-file operations.
template <class F>
auto with_file(FileWorld& world, const std::string& path, OpenMode mode, F&& body) -> std::invoke_result_t<F, FileToken> {
    auto file = world.open(path, mode);
    if (!file.ok())
        return file.error();
    auto r = body(*file);
    world.close(*file);
    return r;
}

Result<void> write_then_sync(FileWorld& world, FileToken file, std::string_view bytes, bool sync, bool append) {
    auto r = append ? world.append(file, bytes) : world.write(file, 0, bytes);
    if (r.ok() && sync)
        r = world.sync(file);
    return r;
}

// --- the machine's file system ---------------------------------------------------------

class RealFileWorld final : public FileWorld {
public:
    Result<FileToken> open(const std::string& path, OpenMode mode) override {
        int flags = O_CLOEXEC;
        bool rd = has(mode, OpenMode::read), wr = has(mode, OpenMode::write) || has(mode, OpenMode::append);
        flags |= rd && wr ? O_RDWR : wr ? O_WRONLY : O_RDONLY;
        if (has(mode, OpenMode::create))
            flags |= O_CREAT;
        if (has(mode, OpenMode::truncate))
            flags |= O_TRUNC;
        if (has(mode, OpenMode::append))
            flags |= O_APPEND;
        if (has(mode, OpenMode::exclusive))
            flags |= O_EXCL;
        int fd = ::open(path.c_str(), flags, 0644);
        if (fd < 0)
            return last_error();
        return FileToken{fd};
    }

    void close(FileToken file) noexcept override { ::close(static_cast<int>(file)); }

    Result<std::string> read(FileToken file, std::uint64_t offset, std::size_t max_bytes) override {
        std::string out(max_bytes, '\0');
        std::size_t got = 0;
        while (got < max_bytes) {
            ssize_t n = ::pread(static_cast<int>(file), out.data() + got, max_bytes - got,
                                static_cast<off_t>(offset + got));
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                return last_error();
            }
            if (n == 0)
                break;
            got += static_cast<std::size_t>(n);
        }
        out.resize(got);
        return out;
    }

    Result<void> write(FileToken file, std::uint64_t offset, std::string_view bytes) override {
        return write_all(static_cast<int>(file), bytes, static_cast<std::int64_t>(offset));
    }

    Result<void> append(FileToken file, std::string_view bytes) override {
        if (::lseek(static_cast<int>(file), 0, SEEK_END) < 0)
            return last_error();
        return write_all(static_cast<int>(file), bytes, -1);
    }

    Result<void> sync(FileToken file) override {
        if (::fsync(static_cast<int>(file)) != 0)
            return last_error();
        return {};
    }

    Result<std::uint64_t> size(FileToken file) override {
        struct stat st {};
        if (::fstat(static_cast<int>(file), &st) != 0)
            return last_error();
        return static_cast<std::uint64_t>(st.st_size);
    }

    Result<void> truncate(FileToken file, std::uint64_t size) override {
        if (::ftruncate(static_cast<int>(file), static_cast<off_t>(size)) != 0)
            return last_error();
        return {};
    }

    Result<void> rename(const std::string& from, const std::string& to) override {
        if (::rename(from.c_str(), to.c_str()) != 0)
            return last_error();
        return {};
    }

    Result<void> unlink(const std::string& path) override {
        if (::unlink(path.c_str()) != 0)
            return last_error();
        return {};
    }

    Result<void> sync_directory(const std::string& path) override {
        std::string dir = std::filesystem::path(path).parent_path().string();
        int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
            return last_error();
        Result<void> r;
        if (::fsync(fd) != 0)
            r = last_error();
        ::close(fd);
        return r;
    }

    Result<bool> exists(const std::string& path) override {
        struct stat st {};
        if (::stat(path.c_str(), &st) == 0)
            return true;
        if (errno == ENOENT || errno == ENOTDIR)
            return false;
        return last_error();
    }

    // Folders made for the program hold its data: 0700, as the runtime's own (traces).
    Result<void> make_directories(const std::string& path) override {
        if (const int error = detail::make_private_directories(path); error != 0)
            return error_from_errno(error);
        return {};
    }

private:
    static Result<void> write_all(int fd, std::string_view bytes, std::int64_t offset) {
        while (!bytes.empty()) {
            ssize_t n = offset >= 0 ? ::pwrite(fd, bytes.data(), bytes.size(), offset)
                                    : ::write(fd, bytes.data(), bytes.size());
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                return last_error();
            }
            bytes.remove_prefix(static_cast<std::size_t>(n));
            if (offset >= 0)
                offset += n;
        }
        return {};
    }
};

} // namespace

std::shared_ptr<FileWorld> real_file_world() {
    static const std::shared_ptr<FileWorld> world = std::make_shared<RealFileWorld>();
    return world;
}

// --- File ------------------------------------------------------------------------------------

Result<File> File::open(std::string path, OpenMode mode, Deadline deadline) {
    auto core = std::make_shared<detail::FileCore>();
    core->path = std::move(path);
    core->world = world_of("File::open()");
    auto r = on_pool(deadline, [core, mode]() -> Result<void> {
        auto token = core->world->open(core->path, mode);
        if (!token.ok())
            return token.error();
        core->token = *token;
        return {};
    });
    if (!r.ok())
        return r.error();
    return File(std::move(core));
}

const std::string& File::path() const {
    REPRISE_ASSERT(core_ != nullptr);
    return core_->path;
}

Result<std::string> File::read_at(std::uint64_t offset, std::size_t max_bytes, Deadline deadline) {
    REPRISE_ASSERT_MSG(core_ != nullptr, "read from a closed File");
    if (max_bytes > limits::file_read_bytes_max)
        return Errc::limit;
    return on_pool(deadline, [core = core_, offset, max_bytes] { return core->world->read(core->token, offset, max_bytes); });
}

Result<void> File::write_at(std::uint64_t offset, std::string_view bytes, Deadline deadline) {
    REPRISE_ASSERT_MSG(core_ != nullptr, "write to a closed File");
    return on_pool(deadline, [core = core_, offset, data = std::string(bytes)] {
        return core->world->write(core->token, offset, data);
    });
}

Result<void> File::append(std::string_view bytes, Deadline deadline) {
    REPRISE_ASSERT_MSG(core_ != nullptr, "write to a closed File");
    return on_pool(deadline, [core = core_, data = std::string(bytes)] { return core->world->append(core->token, data); });
}

Result<void> File::sync(Deadline deadline) {
    REPRISE_ASSERT_MSG(core_ != nullptr, "sync of a closed File");
    return on_pool(deadline, [core = core_] { return core->world->sync(core->token); });
}

Result<std::uint64_t> File::size(Deadline deadline) {
    REPRISE_ASSERT_MSG(core_ != nullptr, "size of a closed File");
    return on_pool(deadline, [core = core_] { return core->world->size(core->token); });
}

Result<void> File::truncate(std::uint64_t size, Deadline deadline) {
    REPRISE_ASSERT_MSG(core_ != nullptr, "truncate of a closed File");
    return on_pool(deadline, [core = core_, size] { return core->world->truncate(core->token, size); });
}

// --- whole-file operations: open, the steps, close ---------------------------------------------

Result<std::string> read_file(std::string path, std::size_t max_bytes, Deadline deadline) {
    return on_pool(deadline, [world = world_of("read_file()"), path = std::move(path), max_bytes] {
        return with_file(*world, path, OpenMode::read, [&](FileToken file) -> Result<std::string> {
            auto size = world->size(file);
            if (!size.ok())
                return size.error();
            if (*size > max_bytes)
                return Errc::limit;
            return world->read(file, 0, static_cast<std::size_t>(*size));
        });
    });
}

Result<void> write_file(std::string path, std::string_view bytes, Durability durability, Deadline deadline) {
    return on_pool(deadline, [world = world_of("write_file()"), path = std::move(path), data = std::string(bytes),
                              durability] {
        return with_file(*world, path, OpenMode::write | OpenMode::create | OpenMode::truncate, [&](FileToken file) {
            return write_then_sync(*world, file, data, durability == Durability::synced, false);
        });
    });
}

Result<void> write_file_atomic(std::string path, std::string_view bytes, Deadline deadline) {
    return on_pool(deadline, [world = world_of("write_file_atomic()"), path = std::move(path),
                              data = std::string(bytes)]() -> Result<void> {
        const std::string tmp = path + ".tmp";
        auto written = with_file(*world, tmp, OpenMode::write | OpenMode::create | OpenMode::truncate,
                                 [&](FileToken file) { return write_then_sync(*world, file, data, true, false); });
        if (!written.ok())
            return written;
        if (auto r = world->rename(tmp, path); !r.ok())
            return r;
        return world->sync_directory(path);
    });
}

Result<void> append_file(std::string path, std::string_view bytes, Durability durability, Deadline deadline) {
    return on_pool(deadline, [world = world_of("append_file()"), path = std::move(path), data = std::string(bytes),
                              durability] {
        return with_file(*world, path, OpenMode::write | OpenMode::create | OpenMode::append, [&](FileToken file) {
            return write_then_sync(*world, file, data, durability == Durability::synced, true);
        });
    });
}

Result<void> rename_file(std::string from, std::string to, Deadline deadline) {
    return on_pool(deadline, [world = world_of("rename_file()"), from = std::move(from), to = std::move(to)] {
        return world->rename(from, to);
    });
}

Result<void> remove_file(std::string path, Deadline deadline) {
    return on_pool(deadline, [world = world_of("remove_file()"), path = std::move(path)] { return world->unlink(path); });
}

Result<bool> file_exists(std::string path, Deadline deadline) {
    return on_pool(deadline, [world = world_of("file_exists()"), path = std::move(path)] { return world->exists(path); });
}

Result<void> make_directories(std::string path, Deadline deadline) {
    return on_pool(deadline, [world = world_of("make_directories()"), path = std::move(path)] {
        return world->make_directories(path);
    });
}

Result<void> sync_directory_of(std::string path, Deadline deadline) {
    return on_pool(deadline, [world = world_of("sync_directory_of()"), path = std::move(path)] {
        return world->sync_directory(path);
    });
}

} // namespace reprise
