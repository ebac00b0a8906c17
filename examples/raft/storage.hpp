// What a RAFT node keeps on disk: term and vote (replaced atomically) and its append-only log.
#pragma once

#include "message.hpp"

#include <reprise/io/file.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace reprise::raft {

/// Term and vote: they must reach the disk before any message that depends on them leaves.
struct HardState {
    std::uint64_t term = 0;
    std::uint32_t voted_for = 0;  ///< 0: nobody in this term
    friend bool operator==(const HardState&, const HardState&) = default;
};

/// What opening the storage found.
struct Recovery {
    HardState hard_state;
    std::uint64_t entries = 0;
    std::uint64_t torn_bytes = 0;  ///< bytes of a torn last record cut from the log's end
};

/// The node's persistent state in a directory, through the runtime's file API (so
/// every read and write is an offloaded operation whose result the trace records):
/// - `state`: "reprise-raft state 1\nterm T\nvote V\n", replaced with write_file_atomic;
/// - `log`: the magic "RRAFTLG1", then one record per entry: u32 payload length,
///   u32 CRC-32C of the payload, payload = u64 term + command (little-endian).
///   Appends are synced before they are acknowledged. A torn last record (a crash
///   mid-append), or a bad record followed by nothing but zero bytes (the file grew
///   before the data landed), is cut off at open; a bad record followed by other data
///   is corruption and refuses to open.
/// Log indices start at 1; index 0 is the empty prefix with term 0.
class Storage {
public:
    static constexpr std::string_view log_magic = "RRAFTLG1";
    static constexpr std::size_t record_header_bytes = 8;

    /// Creates the directory if needed and loads everything. Returns an error text
    /// ("" on success).
    std::string open(const std::string& dir, Recovery& recovery);

    /// Persists term and vote. Errors are left in last_error().
    bool save_hard_state(const HardState& hs);
    /// Appends entries at the log's end and syncs.
    bool append(const std::vector<Entry>& entries);
    /// Removes entries `from` and after (a follower's conflicting suffix) and syncs.
    bool truncate_from(std::uint64_t from);

    std::uint64_t last_index() const noexcept { return entries_.size(); }
    /// Term of entry `index`; 0 for index 0. Asserts index <= last_index().
    std::uint64_t term_at(std::uint64_t index) const;
    const Entry& entry(std::uint64_t index) const;
    const std::string& last_error() const noexcept { return error_; }
    const HardState& hard_state() const noexcept { return hard_state_; }

    /// The bytes of one log record (exposed for tests that damage logs on purpose).
    static std::string encode_record(const Entry& e);

private:
    bool fail(std::string what, const Error& e);
    std::string dir_;
    File log_;
    HardState hard_state_;
    std::vector<Entry> entries_;
    std::vector<std::uint64_t> offsets_;  ///< file offset of each entry's record
    std::uint64_t end_offset_ = 0;        ///< bytes of the log file that hold good records
    std::string error_;
};

} // namespace reprise::raft
