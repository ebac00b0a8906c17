// The node's disk state: atomic term+vote file, and the length+checksum framed append-only log.
#include "storage.hpp"

#include <filesystem>

#include <reprise/record/chunk.hpp>
#include <reprise/record/trace.hpp>
#include <reprise/runtime/assert.hpp>

#include <fmt/core.h>

#include <charconv>

namespace reprise::raft {

namespace {

constexpr std::size_t read_chunk_bytes = 1024 * 1024;
constexpr std::string_view state_magic = "reprise-raft state 1\n";

void put_u32(std::string& out, std::uint32_t v) {
    for (int i = 0; i < 4; ++i)
        out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void put_u64(std::string& out, std::uint64_t v) {
    for (int i = 0; i < 8; ++i)
        out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
std::uint64_t get_le(std::string_view in, std::size_t bytes) {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < bytes; ++i)
        v |= static_cast<std::uint64_t>(static_cast<unsigned char>(in[i])) << (8 * i);
    return v;
}

// Parses "term T\nvote V\n" after the magic line.
bool parse_state(std::string_view text, HardState& hs) {
    if (text.substr(0, state_magic.size()) != state_magic)
        return false;
    text.remove_prefix(state_magic.size());
    auto field = [&](std::string_view name, std::uint64_t& v) {
        if (text.substr(0, name.size()) != name)
            return false;
        text.remove_prefix(name.size());
        auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
        if (ec != std::errc{} || end == text.data() + text.size() || *end != '\n')
            return false;
        text.remove_prefix(static_cast<std::size_t>(end - text.data()) + 1);
        return true;
    };
    std::uint64_t term = 0, vote = 0;
    if (!field("term ", term) || !field("vote ", vote) || !text.empty() || vote > UINT32_MAX)
        return false;
    hs.term = term;
    hs.voted_for = static_cast<std::uint32_t>(vote);
    return true;
}

} // namespace

std::string Storage::encode_record(const Entry& e) {
    std::string payload;
    put_u64(payload, e.term);
    payload += e.command;
    std::string out;
    put_u32(out, static_cast<std::uint32_t>(payload.size()));
    put_u32(out, trace::crc32c(payload));
    out += payload;
    return out;
}

bool Storage::fail(std::string what, const Error& e) {
    error_ = fmt::format("{}: {}", what, e.message());
    return false;
}

std::string Storage::open(const std::string& dir, Recovery& recovery) {
    dir_ = dir;
    if (auto r = make_directories(dir); !r.ok())
        return fmt::format("cannot create {}: {}", dir, r.error().message());
    // The folder's own name must be durable too, in its parent (and each folder's above it,
    // for folders just made): else a power cut after the first acknowledged write can take
    // the whole folder, term, vote and log, with it. (Found by reprise-raft-sim, seed 111.)
    for (std::filesystem::path p = std::filesystem::path(dir).lexically_normal(); p.has_relative_path();
         p = p.parent_path()) {
        if (auto r = sync_directory_of(p.string()); !r.ok())
            return fmt::format("cannot sync the folder holding {}: {}", p.string(), r.error().message());
        if (p.parent_path() == p)
            break;
    }

    auto state = read_file(dir + "/state", 4096);
    if (state.ok()) {
        if (!parse_state(*state, hard_state_))
            return fmt::format("{}/state is not a reprise-raft state file", dir);
    } else if (state.code() != Errc::not_found) {
        return fmt::format("cannot read {}/state: {}", dir, state.error().message());
    }

    const std::string log_path = dir + "/log";
    // A new log is created whole with its magic and its directory entry synced (the
    // entries appended later are fsynced, but an fsync of a file does not make its name
    // durable: after a power cut the acknowledged entries could vanish with the name).
    auto exists = file_exists(log_path);
    if (!exists.ok())
        return fmt::format("cannot look for {}: {}", log_path, exists.error().message());
    if (!*exists) {
        if (auto r = write_file_atomic(log_path, log_magic); !r.ok())
            return fmt::format("cannot create {}: {}", log_path, r.error().message());
    }
    auto file = File::open(log_path, OpenMode::read | OpenMode::write | OpenMode::create);
    if (!file.ok())
        return fmt::format("cannot open {}: {}", log_path, file.error().message());
    log_ = std::move(*file);
    auto size = log_.size();
    if (!size.ok())
        return fmt::format("cannot stat {}: {}", log_path, size.error().message());
    std::string bytes;
    while (bytes.size() < *size) {
        auto chunk = log_.read_at(bytes.size(), read_chunk_bytes);
        if (!chunk.ok())
            return fmt::format("cannot read {}: {}", log_path, chunk.error().message());
        if (chunk->empty())
            break;  // the file shrank under us: take what was there
        bytes += *chunk;
    }

    if (bytes.size() < log_magic.size()) {
        // New, or torn while its magic was written: start it afresh.
        if (auto r = log_.truncate(0); !r.ok())
            return fmt::format("cannot truncate {}: {}", log_path, r.error().message());
        if (auto r = log_.append(log_magic); !r.ok())
            return fmt::format("cannot write {}: {}", log_path, r.error().message());
        if (auto r = log_.sync(); !r.ok())
            return fmt::format("cannot sync {}: {}", log_path, r.error().message());
        recovery.torn_bytes = bytes.size();
        end_offset_ = log_magic.size();
    } else {
        if (std::string_view(bytes).substr(0, log_magic.size()) != log_magic)
            return fmt::format("{} is not a reprise-raft log (bad magic)", log_path);
        std::size_t pos = log_magic.size();
        while (pos < bytes.size()) {
            std::string_view rest = std::string_view(bytes).substr(pos);
            bool whole = rest.size() >= record_header_bytes;
            std::uint64_t len = whole ? get_le(rest, 4) : 0;
            whole = whole && len <= rest.size() - record_header_bytes;
            if (!whole)
                break;  // torn: the record runs past the end of the file
            std::string_view payload = rest.substr(record_header_bytes, len);
            bool good = len >= 8 && len <= wire::command_bytes_max + 8 &&
                        trace::crc32c(payload) == static_cast<std::uint32_t>(get_le(rest.substr(4), 4));
            if (!good) {
                if (record_header_bytes + len == rest.size())
                    break;  // a bad last record: torn mid-write
                if (rest.find_first_not_of('\0') == std::string_view::npos)
                    break;  // zeros to the end: the file grew before its data landed (torn)
                return fmt::format("{} is corrupt at byte offset {} (entry {}): bad record followed by more data",
                                   log_path, pos, entries_.size() + 1);
            }
            offsets_.push_back(pos);
            entries_.push_back(Entry{get_le(payload, 8), std::string(payload.substr(8))});
            pos += record_header_bytes + len;
        }
        end_offset_ = pos;
        if (pos < bytes.size()) {
            recovery.torn_bytes = bytes.size() - pos;
            if (auto r = log_.truncate(pos); !r.ok())
                return fmt::format("cannot truncate {}: {}", log_path, r.error().message());
            if (auto r = log_.sync(); !r.ok())
                return fmt::format("cannot sync {}: {}", log_path, r.error().message());
        }
    }
    recovery.hard_state = hard_state_;
    recovery.entries = entries_.size();
    return {};
}

bool Storage::save_hard_state(const HardState& hs) {
    std::string text = fmt::format("{}term {}\nvote {}\n", state_magic, hs.term, hs.voted_for);
    if (auto r = write_file_atomic(dir_ + "/state", text); !r.ok())
        return fail("cannot write " + dir_ + "/state", r.error());
    hard_state_ = hs;
    return true;
}

bool Storage::append(const std::vector<Entry>& entries) {
    REPRISE_ASSERT(log_.is_open());
    if (entries.empty())
        return true;
    std::string bytes;
    std::vector<std::uint64_t> offsets;
    for (const Entry& e : entries) {
        offsets.push_back(end_offset_ + bytes.size());
        bytes += encode_record(e);
    }
    if (auto r = log_.append(bytes); !r.ok())
        return fail("cannot append to " + dir_ + "/log", r.error());
    if (auto r = log_.sync(); !r.ok())
        return fail("cannot sync " + dir_ + "/log", r.error());
    end_offset_ += bytes.size();
    offsets_.insert(offsets_.end(), offsets.begin(), offsets.end());
    entries_.insert(entries_.end(), entries.begin(), entries.end());
    return true;
}

bool Storage::truncate_from(std::uint64_t from) {
    REPRISE_ASSERT(from >= 1 && from <= last_index());
    const std::uint64_t offset = offsets_[from - 1];
    if (auto r = log_.truncate(offset); !r.ok())
        return fail("cannot truncate " + dir_ + "/log", r.error());
    if (auto r = log_.sync(); !r.ok())
        return fail("cannot sync " + dir_ + "/log", r.error());
    end_offset_ = offset;
    offsets_.resize(from - 1);
    entries_.resize(from - 1);
    return true;
}

std::uint64_t Storage::term_at(std::uint64_t index) const {
    REPRISE_ASSERT(index <= last_index());
    return index == 0 ? 0 : entries_[index - 1].term;
}

const Entry& Storage::entry(std::uint64_t index) const {
    REPRISE_ASSERT(index >= 1 && index <= last_index());
    return entries_[index - 1];
}

} // namespace reprise::raft
