// SimDisk: a node's simulated disk behind the typed file steps, with what a power loss does to it.
#pragma once

#include "reprise/io/file_world.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

namespace reprise::sim {

/// Faults of one simulated disk. Every draw comes from the disk's seed.
struct DiskFaults {
    /// A file's bytes beyond this many in all fail a write with ENOSPC (a full disk).
    std::uint64_t capacity_bytes = std::uint64_t{1} << 40;
    /// Chance that a sync() or sync_directory() fails with EIO (see docs/simulation.md,
    /// "What a failed fsync means").
    double sync_failure_rate = 0.0;
    /// At a crash, a file's last unsynced write may survive in part (a torn write).
    bool torn_writes = true;
};

/// One node's disk. What a program wrote is visible at once; it survives a crash only
/// once synced (a file's data by sync(), a create, rename or unlink by sync_directory()
/// of its folder). Thread-safe, as every FileWorld (one lock; the simulator runs every step
/// on its loop, a runtime on its offload pool). The model: docs/simulation.md, "The simulated disk".
class SimDisk final : public FileWorld {
public:
    explicit SimDisk(std::uint64_t seed, DiskFaults faults = {});

    Result<FileToken> open(const std::string& path, OpenMode mode) override;
    void close(FileToken file) noexcept override;
    Result<std::string> read(FileToken file, std::uint64_t offset, std::size_t max_bytes) override;
    Result<void> write(FileToken file, std::uint64_t offset, std::string_view bytes) override;
    Result<void> append(FileToken file, std::string_view bytes) override;
    Result<void> sync(FileToken file) override;
    Result<std::uint64_t> size(FileToken file) override;
    Result<void> truncate(FileToken file, std::uint64_t size) override;
    Result<void> rename(const std::string& from, const std::string& to) override;
    Result<void> unlink(const std::string& path) override;
    Result<void> sync_directory(const std::string& path) override;
    Result<bool> exists(const std::string& path) override;
    Result<void> make_directories(const std::string& path) override;

    /// Power loss: what was not durable is gone (a torn last write may survive in part),
    /// every open file is closed, and every step fails with EIO until restart().
    void crash();
    /// After `steps` more steps have run, the disk crashes (crash()) before the next one,
    /// calls `on_crash` once (without the disk's lock held) and fails that step with EIO: a
    /// crash between any two steps of a job. `steps` = 0 crashes the very next step. A later
    /// call replaces the plan; a crash() before it fires cancels it.
    void crash_after_steps(std::uint64_t steps, std::function<void()> on_crash);
    /// Forgets a crash planned by crash_after_steps that has not happened yet.
    void cancel_crash();
    /// The machine comes back: the durable state is what is there; steps run again.
    void restart();
    bool crashed() const noexcept;

    void set_faults(DiskFaults faults);
    /// A copy: a reference would outlive the lock that guards it.
    DiskFaults faults() const;

    /// Steps called so far (every FileWorld call above, failed ones included).
    std::uint64_t steps() const noexcept;
    /// The files a program sees now, and the ones a crash now would leave (without the part
    /// of a torn write, drawn at the crash): path -> bytes.
    std::map<std::string, std::string> visible_files() const;
    std::map<std::string, std::string> durable_files() const;
    /// A digest of the visible and durable state (the simulator's self-check hashes it).
    std::uint64_t digest() const;

    ~SimDisk() override;

private:
    struct State;
    std::unique_ptr<State> s_;
};

} // namespace reprise::sim
