// Files through the runtime: every operation runs on the offload pool, so the loop never blocks on a disk.
#pragma once

#include "reprise/clock/time.hpp"
#include "reprise/runtime/limits.hpp"
#include "reprise/runtime/result.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace reprise {

namespace detail {
struct FileCore;
}

/// How File::open opens a file; combine with |.
enum class OpenMode : unsigned {
    read = 1,
    write = 2,
    create = 4,      ///< create if missing (mode 0644)
    truncate = 8,
    append = 16,     ///< every write goes to the end
    exclusive = 32,  ///< with create: fail if it exists
};
constexpr OpenMode operator|(OpenMode a, OpenMode b) noexcept {
    return static_cast<OpenMode>(static_cast<unsigned>(a) | static_cast<unsigned>(b));
}
constexpr bool has(OpenMode set, OpenMode flag) noexcept {
    return (static_cast<unsigned>(set) & static_cast<unsigned>(flag)) != 0;
}

/// Whether a write reaches the disk before it returns.
enum class Durability : unsigned char { buffered, synced };

/// An open file. Each operation blocks the calling task (not the loop) until the
/// pool finished it, or its deadline passes (Errc::timed_out; the operation itself
/// still completes on the pool). The descriptor closes when the File and every operation in
/// flight on it are gone.
class File {
public:
    File() = default;
    static Result<File> open(std::string path, OpenMode mode, Deadline deadline = Deadline::never());

    /// Up to `max_bytes` from `offset` (fewer at the end of the file).
    Result<std::string> read_at(std::uint64_t offset, std::size_t max_bytes, Deadline deadline = Deadline::never());
    Result<void> write_at(std::uint64_t offset, std::string_view bytes, Deadline deadline = Deadline::never());
    /// Writes at the end of the file.
    Result<void> append(std::string_view bytes, Deadline deadline = Deadline::never());
    /// fsync(2).
    Result<void> sync(Deadline deadline = Deadline::never());
    Result<std::uint64_t> size(Deadline deadline = Deadline::never());
    Result<void> truncate(std::uint64_t size, Deadline deadline = Deadline::never());
    void close() noexcept { core_.reset(); }
    bool is_open() const noexcept { return core_ != nullptr; }
    const std::string& path() const;

private:
    explicit File(std::shared_ptr<detail::FileCore> core) : core_(std::move(core)) {}
    std::shared_ptr<detail::FileCore> core_;
};

/// The whole file. Errors: not_found, limit (larger than `max_bytes`), io.
Result<std::string> read_file(std::string path, std::size_t max_bytes = limits::file_read_bytes_max,
                              Deadline deadline = Deadline::never());
/// Creates or replaces the file's contents.
Result<void> write_file(std::string path, std::string_view bytes, Durability durability = Durability::buffered,
                        Deadline deadline = Deadline::never());
/// Replaces the file's contents atomically: a crash leaves the old or the new
/// contents, never a mix (write to a temporary, fsync, rename, fsync the directory).
Result<void> write_file_atomic(std::string path, std::string_view bytes, Deadline deadline = Deadline::never());
Result<void> append_file(std::string path, std::string_view bytes, Durability durability = Durability::buffered,
                         Deadline deadline = Deadline::never());
Result<void> rename_file(std::string from, std::string to, Deadline deadline = Deadline::never());
Result<void> remove_file(std::string path, Deadline deadline = Deadline::never());
/// Whether a file or directory exists at `path`.
Result<bool> file_exists(std::string path, Deadline deadline = Deadline::never());
/// mkdir -p. The new folders' names are not durable until their parents are synced
/// (sync_directory_of each): a power cut can take a folder just made, and everything in it.
Result<void> make_directories(std::string path, Deadline deadline = Deadline::never());
/// fsync of the folder holding `path`: `path`'s name there (created, renamed or removed)
/// survives a power cut.
Result<void> sync_directory_of(std::string path, Deadline deadline = Deadline::never());

} // namespace reprise
