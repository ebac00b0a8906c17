// File operations, each run on the offload pool with its result returned to the task.
#include "reprise/io/file.hpp"

#include "reprise/io/offload.hpp"
#include "reprise/runtime/limits.hpp"

#include <cerrno>
#include <fcntl.h>
#include <filesystem>
#include <sys/stat.h>
#include <unistd.h>

namespace reprise {

namespace detail {
struct FileCore {
    std::string path;
    int fd = -1;
    ~FileCore() {
        if (fd >= 0)
            ::close(fd);
    }
};
} // namespace detail

namespace {

Error last_error() { return error_from_errno(errno); }

// Runs a file operation on the pool; its own Result comes back to the task.
template <class F>
auto on_pool(Deadline deadline, F&& fn) -> std::invoke_result_t<F> {
    auto r = offload(std::forward<F>(fn), deadline);
    if (!r.ok())
        return r.error();
    return std::move(*r);
}

Result<void> write_all(int fd, std::string_view bytes, std::int64_t offset) {
    while (!bytes.empty()) {
        ssize_t n = offset >= 0 ? ::pwrite(fd, bytes.data(), bytes.size(), offset) : ::write(fd, bytes.data(), bytes.size());
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

Result<std::string> read_upto(int fd, std::int64_t offset, std::size_t max_bytes) {
    std::string out(max_bytes, '\0');
    std::size_t got = 0;
    while (got < max_bytes) {
        ssize_t n = ::pread(fd, out.data() + got, max_bytes - got, offset + static_cast<std::int64_t>(got));
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

Result<void> write_whole(const std::string& path, std::string_view bytes, int flags, bool sync) {
    int fd = ::open(path.c_str(), flags | O_CLOEXEC, 0644);
    if (fd < 0)
        return last_error();
    auto r = write_all(fd, bytes, -1);
    if (r.ok() && sync && ::fsync(fd) != 0)
        r = last_error();
    ::close(fd);
    return r;
}

Result<void> sync_directory_of(const std::string& path) {
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

} // namespace

Result<File> File::open(std::string path, OpenMode mode, Deadline deadline) {
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
    auto core = std::make_shared<detail::FileCore>();
    core->path = std::move(path);
    auto r = on_pool(deadline, [core, flags]() -> Result<void> {
        core->fd = ::open(core->path.c_str(), flags, 0644);
        if (core->fd < 0)
            return last_error();
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
    return on_pool(deadline, [core = core_, offset, max_bytes] {
        return read_upto(core->fd, static_cast<std::int64_t>(offset), max_bytes);
    });
}

Result<void> File::write_at(std::uint64_t offset, std::string_view bytes, Deadline deadline) {
    REPRISE_ASSERT_MSG(core_ != nullptr, "write to a closed File");
    return on_pool(deadline, [core = core_, offset, data = std::string(bytes)] {
        return write_all(core->fd, data, static_cast<std::int64_t>(offset));
    });
}

Result<void> File::append(std::string_view bytes, Deadline deadline) {
    REPRISE_ASSERT_MSG(core_ != nullptr, "write to a closed File");
    return on_pool(deadline, [core = core_, data = std::string(bytes)]() -> Result<void> {
        if (::lseek(core->fd, 0, SEEK_END) < 0)
            return last_error();
        return write_all(core->fd, data, -1);
    });
}

Result<void> File::sync(Deadline deadline) {
    REPRISE_ASSERT_MSG(core_ != nullptr, "sync of a closed File");
    return on_pool(deadline, [core = core_]() -> Result<void> {
        if (::fsync(core->fd) != 0)
            return last_error();
        return {};
    });
}

Result<std::uint64_t> File::size(Deadline deadline) {
    REPRISE_ASSERT_MSG(core_ != nullptr, "size of a closed File");
    return on_pool(deadline, [core = core_]() -> Result<std::uint64_t> {
        struct stat st {};
        if (::fstat(core->fd, &st) != 0)
            return last_error();
        return static_cast<std::uint64_t>(st.st_size);
    });
}

Result<void> File::truncate(std::uint64_t size, Deadline deadline) {
    REPRISE_ASSERT_MSG(core_ != nullptr, "truncate of a closed File");
    return on_pool(deadline, [core = core_, size]() -> Result<void> {
        if (::ftruncate(core->fd, static_cast<off_t>(size)) != 0)
            return last_error();
        return {};
    });
}

Result<std::string> read_file(std::string path, std::size_t max_bytes, Deadline deadline) {
    return on_pool(deadline, [path = std::move(path), max_bytes]() -> Result<std::string> {
        int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return last_error();
        struct stat st {};
        Result<std::string> r = Errc::limit;
        if (::fstat(fd, &st) != 0)
            r = last_error();
        else if (static_cast<std::uint64_t>(st.st_size) <= max_bytes)
            r = read_upto(fd, 0, static_cast<std::size_t>(st.st_size));
        ::close(fd);
        return r;
    });
}

Result<void> write_file(std::string path, std::string_view bytes, Durability durability, Deadline deadline) {
    return on_pool(deadline, [path = std::move(path), data = std::string(bytes), durability] {
        return write_whole(path, data, O_WRONLY | O_CREAT | O_TRUNC, durability == Durability::synced);
    });
}

Result<void> write_file_atomic(std::string path, std::string_view bytes, Deadline deadline) {
    return on_pool(deadline, [path = std::move(path), data = std::string(bytes)]() -> Result<void> {
        std::string tmp = path + ".tmp";
        if (auto r = write_whole(tmp, data, O_WRONLY | O_CREAT | O_TRUNC, true); !r.ok())
            return r;
        if (::rename(tmp.c_str(), path.c_str()) != 0)
            return last_error();
        return sync_directory_of(path);
    });
}

Result<void> append_file(std::string path, std::string_view bytes, Durability durability, Deadline deadline) {
    return on_pool(deadline, [path = std::move(path), data = std::string(bytes), durability] {
        return write_whole(path, data, O_WRONLY | O_CREAT | O_APPEND, durability == Durability::synced);
    });
}

Result<void> rename_file(std::string from, std::string to, Deadline deadline) {
    return on_pool(deadline, [from = std::move(from), to = std::move(to)]() -> Result<void> {
        if (::rename(from.c_str(), to.c_str()) != 0)
            return last_error();
        return {};
    });
}

Result<void> remove_file(std::string path, Deadline deadline) {
    return on_pool(deadline, [path = std::move(path)]() -> Result<void> {
        if (::unlink(path.c_str()) != 0)
            return last_error();
        return {};
    });
}

Result<bool> file_exists(std::string path, Deadline deadline) {
    return on_pool(deadline, [path = std::move(path)]() -> Result<bool> {
        struct stat st {};
        if (::stat(path.c_str(), &st) == 0)
            return true;
        if (errno == ENOENT || errno == ENOTDIR)
            return false;
        return last_error();
    });
}

Result<void> make_directories(std::string path, Deadline deadline) {
    return on_pool(deadline, [path = std::move(path)]() -> Result<void> {
        std::error_code ec;
        std::filesystem::create_directories(path, ec);
        if (ec)
            return error_from_errno(ec.value());
        return {};
    });
}

} // namespace reprise
