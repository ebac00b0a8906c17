// The trace reader: opens each chunk's envelope and decodes its records in place, treating every byte as hostile.
#include "reprise/record/trace.hpp"

#include "reprise/record/chunk.hpp"
#include "reprise/runtime/assert.hpp"

#include <fmt/core.h>

#include <cerrno>
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <sys/stat.h>

namespace reprise::trace {

namespace {
// How ChunkOpener says that an intact chunk does not open with the key given.
constexpr std::string_view wrong_key = "does not open with this key";

/// The first file PATH.N with N >= `from` in PATH's folder ("" when there is none): a segment
/// past a gap.
std::string segment_after(const std::string& path, std::size_t from) {
    namespace fs = std::filesystem;
    const fs::path p(path);
    const std::string prefix = p.filename().string() + ".";
    std::error_code ec;
    std::string found;
    std::size_t best = SIZE_MAX;
    const bool here = p.parent_path().empty();
    for (fs::directory_iterator it(here ? fs::path(".") : p.parent_path(), ec), end; !ec && it != end;
         it.increment(ec)) {
        const std::string name = it->path().filename().string();
        if (!name.starts_with(prefix) || name.size() == prefix.size() || name.size() - prefix.size() > 9)
            continue;
        const std::string_view digits = std::string_view(name).substr(prefix.size());
        if (digits.find_first_not_of("0123456789") != std::string_view::npos)
            continue;
        const std::size_t n = std::stoul(std::string(digits));
        std::error_code file_ec;
        if (n >= from && n < best && fs::is_regular_file(it->path(), file_ec)) {  // not a dangling link
            best = n;
            found = here ? name : it->path().string();
        }
    }
    return found;
}

std::uint32_t get_u32(const unsigned char* p) {
    return static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
           static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24;
}
} // namespace

Reader::Reader(Reader&& o) noexcept { *this = std::move(o); }

Reader& Reader::operator=(Reader&& o) noexcept {
    if (this != &o) {
        if (file_)
            std::fclose(file_);
        paths_ = std::move(o.paths_);
        segmented_ = o.segmented_;
        any_segment_ = o.any_segment_;
        segment_ = o.segment_;
        file_ = std::exchange(o.file_, nullptr);
        header_ = std::move(o.header_);
        key_ = std::move(o.key_);
        opener_ = std::move(o.opener_);
        chunk_ = std::move(o.chunk_);
        previous_chunk_ = std::move(o.previous_chunk_);
        stored_ = std::move(o.stored_);
        chunk_pos_ = o.chunk_pos_;
        chunk_is_plain_ = o.chunk_is_plain_;
        chunk_offset_ = o.chunk_offset_;
        file_offset_ = o.file_offset_;
        records_ = o.records_;
        chunks_ = o.chunks_;
        chunk_stored_bytes_ = o.chunk_stored_bytes_;
        chunk_payload_bytes_ = o.chunk_payload_bytes_;
        chunks_compressed_ = o.chunks_compressed_;
        chunks_encrypted_ = o.chunks_encrypted_;
        last_mono_ns_ = o.last_mono_ns_;
        last_wall_ns_ = o.last_wall_ns_;
        error_ = std::move(o.error_);
        saw_end_ = o.saw_end_;
        done_ = o.done_;
        header_only_ = o.header_only_;
        keep_to_ = std::move(o.keep_to_);
        take_from_ = std::move(o.take_from_);
        reposition_ = o.reposition_;
    }
    return *this;
}

Reader::~Reader() {
    if (file_)
        std::fclose(file_);
}

std::string Reader::trace_name(const std::string& path) {
    std::error_code ec;
    if (path.size() > 2 && path.ends_with(".0")) {
        const std::string name = path.substr(0, path.size() - 2);
        // A plain trace that happens to be named NAME.0 has its own NAME.0.outcome: left as it is.
        if (!std::filesystem::exists(name, ec) && std::filesystem::is_regular_file(path, ec) &&
            !std::filesystem::exists(path + ".outcome", ec))
            return name;
    }
    return path;
}

Result<Reader> Reader::open(const std::string& given_path, std::string* error_message, const TraceKey* key) {
    Reader r;
    namespace fs = std::filesystem;
    std::error_code ec;
    const std::string path = trace_name(given_path);
    if (fs::is_directory(path, ec)) {
        if (error_message)
            *error_message = fmt::format("{}: is a directory, not a trace", path);
        return Errc::invalid_argument;
    }
    if (fs::exists(path, ec)) {
        r.paths_.push_back(path);
    } else {
        for (std::size_t i = 0; fs::exists(fmt::format("{}.{}", path, i), ec); ++i)
            r.paths_.push_back(fmt::format("{}.{}", path, i));
        r.segmented_ = true;
    }
    if (r.paths_.empty()) {
        if (error_message)
            *error_message = fmt::format("{}: no such trace (nor segments {}.0, {}.1, ...)", path, path, path);
        return Errc::not_found;
    }
    if (key)
        r.key_ = std::make_unique<TraceKey>(*key);
    if (!r.open_segment(0, error_message))
        return Errc::invalid_argument;
    r.last_mono_ns_ = r.header_.start_mono_ns;
    r.last_wall_ns_ = r.header_.start_wall_ns;
    // A sealed trace is opened with its key at once: a wrong key is a refusal at open,
    // not "damage" at the first chunk. (The chunk read stays for the first next(); a
    // damaged or cut first chunk is reported by next() like any other.)
    if (r.header_.encrypted && !r.load_chunk() && r.error_ && r.error_->message.find(wrong_key) != std::string::npos) {
        if (error_message)
            *error_message = fmt::format("{}: {}", path, r.error_->message);
        return Errc::invalid_argument;
    }
    return r;
}

std::optional<std::string> Reader::segment_gap() const {
    if (!segmented_ || header_only_ || saw_end_)
        return std::nullopt;  // past an end record a later file is a leftover: check_nothing_after_end says so
    const std::string base = paths_[0].substr(0, paths_[0].size() - 2);
    std::error_code ec;
    if (std::filesystem::exists(fmt::format("{}.{}", base, paths_.size()), ec))
        return std::nullopt;  // created since the trace was opened: a recording going on, not a gap
    const std::string later = segment_after(base, paths_.size() + 1);
    if (later.empty())
        return std::nullopt;
    // Only a segment of this very recording (not a leftover of another one under the same name).
    Reader r;
    r.header_only_ = r.any_segment_ = true;
    r.paths_.push_back(later);
    if (!r.open_segment(0, nullptr) || r.header_.segment < paths_.size() || r.header_.start_mono_ns != header_.start_mono_ns ||
        r.header_.start_wall_ns != header_.start_wall_ns || r.header_.node != header_.node || r.header_.seed != header_.seed)
        return std::nullopt;
    return fmt::format("the next segment, {}.{}, is missing, though segment {} of the same recording ({}) exists: a "
                       "segment was removed or lost, and the segments after it cannot be read without it (times are "
                       "deltas from the segment before)",
                       base, paths_.size(), r.header_.segment, later);
}

Result<Header> Reader::read_header(const std::string& path, std::string* error_message) {
    Reader r;
    r.header_only_ = true;
    r.paths_.push_back(path);
    std::error_code ec;
    if (!std::filesystem::exists(path, ec) && std::filesystem::exists(path + ".0", ec))
        r.paths_[0] = path + ".0";
    if (!r.open_segment(0, error_message))
        return Errc::invalid_argument;
    return r.header_;
}

bool Reader::open_segment(std::size_t index, std::string* error_message) {
    if (file_)
        std::fclose(file_);
    const std::string& path = paths_[index];
    file_ = std::fopen(path.c_str(), "rb");  // reprise-allow: io (the trace reader is part of record/)
    auto refuse = [&](std::string why) {
        if (error_message)
            *error_message = fmt::format("{}: {}", path, why);
        return false;
    };
    if (!file_)
        return refuse(std::strerror(errno));
    unsigned char fixed[sizeof magic + 12];
    if (std::fread(fixed, 1, sizeof fixed, file_) != sizeof fixed)
        return refuse("not a reprise trace (too short for a header)");
    if (std::memcmp(fixed, magic, sizeof magic) != 0) {
        if (std::memcmp(fixed, "reprise-sim-order", std::min(sizeof fixed, std::size_t{17})) == 0)
            return refuse("not a reprise trace: a simulation's run order (sim.order), which a joint replay of the "
                          "traces beside it follows (docs/trace-format.md)");
        return refuse("not a reprise trace (bad magic)");
    }
    std::uint32_t version = get_u32(fixed + 8);
    std::uint32_t length = get_u32(fixed + 12);
    if (version != format_version) {
        // Every version so far starts with the same header: name the reprise that wrote it.
        std::string by;
        Header old;
        std::string body(std::min<std::uint32_t>(length, header_bytes_max), '\0');
        if (std::fread(body.data(), 1, body.size(), file_) == body.size() && !decode_header(body, old) &&
            !old.runtime_version.empty()) {
            // The bytes of a trace of another version are unchecked (the CRC that covers them is
            // read after this): only printable characters reach the message.
            std::string name = old.runtime_version.substr(0, 32);
            for (char& c : name)
                if (c < 0x20 || c >= 0x7f)
                    c = '?';
            by = fmt::format(" {}", name);
        }
        return refuse(fmt::format("trace format version {} is not supported: this reader (reprise {}) reads version {} "
                                  "only{}",
                                  version, REPRISE_VERSION, format_version,
                                  version < format_version
                                      ? fmt::format(" (recorded by an older reprise{}: replay it with that version)", by)
                                      : fmt::format(" (recorded by a newer reprise{})", by)));
    }
    std::uint32_t crc = get_u32(fixed + 16);
    if (length > header_bytes_max)
        return refuse(fmt::format("header length {} exceeds the limit of {} bytes", length, header_bytes_max));
    std::string body(length, '\0');
    if (std::fread(body.data(), 1, length, file_) != length)
        return refuse("the header is truncated");
    if (crc32c(body) != crc)
        return refuse("the header's checksum does not match");
    Header h;
    if (auto why = decode_header(body, h))
        return refuse(*why);
    // Times are delta-encoded across segment boundaries: a later segment alone
    // cannot be read, only the whole trace from segment 0.
    if (index == 0 && h.segment != 0 && !any_segment_)
        return refuse(fmt::format("this is segment {} of a segmented trace; open the trace by its name without the "
                                  "\".{}\" suffix to read it from segment 0",
                                  h.segment, h.segment));
    if (h.encrypted && !key_ && !header_only_)
        return refuse("the trace is encrypted: give its key (--record-key=FILE)");
    if (index == 0)
        header_ = std::move(h);
    else if (h.segment != index)
        return refuse(fmt::format("segment number {} where {} was expected", h.segment, index));
    else if (h.start_mono_ns != header_.start_mono_ns || h.start_wall_ns != header_.start_wall_ns ||
             h.node != header_.node || h.seed != header_.seed || h.build_id != header_.build_id ||
             h.encrypted != header_.encrypted)
        return refuse("this segment belongs to another recording (its header differs from segment 0's); "
                      "a leftover of an earlier recording to the same path?");
    // Each file's chunks are bound to its own header (an encrypted chunk opens only there).
    // A key given for a trace in the clear is not needed: its chunks open without it (so one
    // --record-key serves a re-recording that seals what it replays, or a diff of both).
    opener_ = std::make_unique<ChunkOpener>(body, h.encrypted ? key_.get() : nullptr);
    segment_ = index;
    file_offset_ = sizeof fixed + length;
    return true;
}

bool Reader::fail(std::uint64_t offset, std::string message, std::size_t segment) {
    error_ = ReadError{offset, records_, std::move(message), paths_[segment]};
    done_ = true;
    return false;
}

std::uint64_t Reader::bytes_left_in_file() const {
    struct stat st {};
    if (::fstat(fileno(file_), &st) != 0)  // reprise-allow: io (the trace reader)
        return 0;
    std::uint64_t size = static_cast<std::uint64_t>(st.st_size);
    std::uint64_t at = file_offset_ + chunk_frame_bytes;
    return size > at ? size - at : 0;
}

// The next chunk from the share, as load_chunk() would have read and opened it; false when the
// share has no more (the file is read from there on).
bool Reader::take_chunk() {
    auto& chunks = take_from_->chunks;
    while (!chunks.empty() && chunks.front().index < chunks_)
        chunks.pop_front();  // read here already (an encrypted trace's first chunk is read at open)
    if (chunks.empty() || chunks.front().index != chunks_) {
        take_from_.reset();
        return false;
    }
    ChunkShare::Chunk& c = chunks.front();
    if (c.segment != segment_) {
        std::string why;
        if (!open_segment(c.segment, &why))
            return fail(0, why, c.segment);
    }
    previous_chunk_.swap(chunk_);
    chunk_ = std::move(c.payload);
    take_from_->bytes -= chunk_.size();
    chunk_offset_ = c.offset;
    file_offset_ = c.offset + chunk_frame_bytes + c.stored_bytes;
    chunk_pos_ = 0;
    chunk_is_plain_ = c.flags == 0;
    ++chunks_;
    chunk_stored_bytes_ += chunk_frame_bytes + c.stored_bytes;
    chunk_payload_bytes_ += chunk_.size();
    chunks_compressed_ += (c.flags & chunk_flag_compressed) != 0;
    chunks_encrypted_ += (c.flags & chunk_flag_encrypted) != 0;
    chunks.pop_front();
    reposition_ = true;
    return true;
}

void Reader::keep_chunk(const ChunkFrame& frame) {
    if (keep_to_->full || keep_to_->bytes + chunk_.size() > keep_to_->max_bytes) {
        keep_to_->full = true;
        keep_to_.reset();
        return;
    }
    keep_to_->bytes += chunk_.size();
    keep_to_->chunks.push_back({segment_, chunks_ - 1, chunk_offset_, frame.stored_bytes, frame.flags, chunk_});
}

bool Reader::load_chunk() {
    if (take_from_ && take_chunk())
        return true;
    if (error_)
        return false;
    if (reposition_) {
        reposition_ = false;
        if (std::fseek(file_, static_cast<long>(file_offset_), SEEK_SET) != 0)
            return fail(file_offset_, fmt::format("cannot seek in the trace: {}", std::strerror(errno)));
    }
    for (;;) {
        unsigned char frame_bytes[chunk_frame_bytes];
        std::size_t got = std::fread(frame_bytes, 1, sizeof frame_bytes, file_);
        if (got == 0 && std::feof(file_)) {
            if (segment_ + 1 < paths_.size()) {
                std::string why;
                if (!open_segment(segment_ + 1, &why))
                    return fail(0, why, segment_ + 1);
                continue;
            }
            if (auto gap = segment_gap())
                return fail(file_offset_, std::move(*gap));
            done_ = true;
            return false;
        }
        chunk_offset_ = file_offset_;
        if (got != sizeof frame_bytes)
            return fail(chunk_offset_, "truncated chunk frame (the recording stopped mid-write)");
        ChunkFrame frame;
        if (auto why = parse_chunk_frame(frame_bytes, frame))
            return fail(chunk_offset_, *why);
        // Allocate no more than the file really holds: a hostile length is bounded
        // by the frame's limits, and a truncated file by its size.
        if (frame.stored_bytes > bytes_left_in_file())
            return fail(chunk_offset_, "truncated chunk (the recording stopped mid-write)");
        stored_.resize(frame.stored_bytes);
        if (std::fread(stored_.data(), 1, frame.stored_bytes, file_) != frame.stored_bytes)
            return fail(chunk_offset_, "truncated chunk (the recording stopped mid-write)");
        if (header_.encrypted && !(frame.flags & chunk_flag_encrypted))
            return fail(chunk_offset_, "an unencrypted chunk in an encrypted trace (the file was altered)");
        // The chunk before this one stays readable: the caller may still hold a record of it.
        previous_chunk_.swap(chunk_);
        if (auto why = opener_->open(frame, stored_, chunks_, chunk_))
            return fail(chunk_offset_, *why);
        REPRISE_ASSERT(chunk_.size() == frame.raw_bytes);
        file_offset_ += chunk_frame_bytes + frame.stored_bytes;
        chunk_pos_ = 0;
        chunk_is_plain_ = frame.flags == 0;
        ++chunks_;
        chunk_stored_bytes_ += chunk_frame_bytes + frame.stored_bytes;
        chunk_payload_bytes_ += frame.raw_bytes;
        chunks_compressed_ += (frame.flags & chunk_flag_compressed) != 0;
        chunks_encrypted_ += (frame.flags & chunk_flag_encrypted) != 0;
        if (keep_to_)
            keep_chunk(frame);
        return true;
    }
}

template <class Out, class Decode>
bool Reader::read_next(Out& out, Decode&& decode) {
    if (done_ || saw_end_)
        return false;
    if (chunk_pos_ >= chunk_.size() && !load_chunk())
        return false;
    std::string_view rest(chunk_.data() + chunk_pos_, chunk_.size() - chunk_pos_);
    const std::size_t before = rest.size();
    if (auto why = decode(rest, out)) {
        // The chunk passed its checksum, so the record is the bad part: its own offset in
        // the file, or in its chunk's payload when that is stored compressed or sealed.
        if (chunk_is_plain_)
            return fail(chunk_offset_ + chunk_frame_bytes + chunk_pos_,
                        fmt::format("record {} is malformed: {}", records_, *why));
        return fail(chunk_offset_, fmt::format("record {} (at byte {} of this chunk's payload) is malformed: {}",
                                               records_, chunk_pos_, *why));
    }
    REPRISE_ASSERT(rest.size() < before);
    chunk_pos_ += before - rest.size();
    ++records_;
    return true;
}

bool Reader::next(Record& out) {
    const bool got = read_next(out, [this](std::string_view& in, Record& r) {
        return decode_record(in, last_mono_ns_, last_wall_ns_, r);
    });
    if (got && is<End>(out))
        saw_end_ = true;
    return got;
}

bool Reader::skim(Skim& out) {
    const bool got = read_next(out, [this](std::string_view& in, Skim& r) {
        return skim_record(in, last_mono_ns_, last_wall_ns_, r);
    });
    if (got && out.kind == RecordKind::end)
        saw_end_ = true;
    return got;
}

bool Reader::check_nothing_after_end() {
    REPRISE_ASSERT_MSG(saw_end_, "check_nothing_after_end() before the end record");
    if (error_)
        return false;
    if (chunk_pos_ < chunk_.size())
        return fail(chunk_is_plain_ ? chunk_offset_ + chunk_frame_bytes + chunk_pos_ : chunk_offset_,
                    fmt::format("{} byte(s) follow the end record in its chunk", chunk_.size() - chunk_pos_));
    if (reposition_) {
        reposition_ = false;
        if (std::fseek(file_, static_cast<long>(file_offset_), SEEK_SET) != 0)
            return fail(file_offset_, fmt::format("cannot seek in the trace: {}", std::strerror(errno)));
    }
    unsigned char byte;
    if (std::fread(&byte, 1, 1, file_) == 1)
        return fail(file_offset_, "bytes follow the chunk that holds the end record");
    if (segment_ + 1 < paths_.size())
        return fail(0,
                    fmt::format("segment {} follows the one that holds the end record (a leftover of an earlier "
                                "recording to the same path?)",
                                paths_[segment_ + 1]),
                    segment_ + 1);
    return true;
}

} // namespace reprise::trace
