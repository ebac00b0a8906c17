// FileWorld: the typed steps every file operation is made of, and the world that carries them out.
#pragma once

#include "reprise/io/file.hpp"
#include "reprise/runtime/result.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace reprise {

/// A file the world opened, named by the world's own token (live: a descriptor).
using FileToken = std::int64_t;

/// Every file operation of the runtime (File, read_file, write_file_atomic, ...) is a
/// sequence of these steps, run as one offloaded job whose result is the recorded
/// input. The live runtime's world is the machine's file system; a simulator or a
/// fault-injecting test gives its own (Options::file_world) and may fail or "crash"
/// between any two steps. Replay runs no step: results come from the trace.
/// Steps may run concurrently on the offload pool's threads: a world is thread-safe.
class FileWorld {
public:
    virtual ~FileWorld() = default;
    virtual Result<FileToken> open(const std::string& path, OpenMode mode) = 0;
    /// Closing cannot fail in a way a program could act on; the token is gone after.
    virtual void close(FileToken file) noexcept = 0;
    /// Up to `max_bytes` from `offset` (fewer at the end of the file).
    virtual Result<std::string> read(FileToken file, std::uint64_t offset, std::size_t max_bytes) = 0;
    virtual Result<void> write(FileToken file, std::uint64_t offset, std::string_view bytes) = 0;
    /// Writes at the end of the file.
    virtual Result<void> append(FileToken file, std::string_view bytes) = 0;
    /// fsync(2): after success, what was written survives a crash. After a failure,
    /// nothing may be assumed about the data written since the last successful sync.
    virtual Result<void> sync(FileToken file) = 0;
    virtual Result<std::uint64_t> size(FileToken file) = 0;
    virtual Result<void> truncate(FileToken file, std::uint64_t size) = 0;
    virtual Result<void> rename(const std::string& from, const std::string& to) = 0;
    virtual Result<void> unlink(const std::string& path) = 0;
    /// fsync of the directory holding `path`: makes a create, rename or unlink in it durable.
    virtual Result<void> sync_directory(const std::string& path) = 0;
    virtual Result<bool> exists(const std::string& path) = 0;
    virtual Result<void> make_directories(const std::string& path) = 0;
};

/// The machine's own file system, through POSIX calls (the live runtime's default).
std::shared_ptr<FileWorld> real_file_world();

} // namespace reprise
