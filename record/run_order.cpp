// A simulation's run order file (sim.order): written by the world, read by a joint replay.
#include "reprise/record/internal/run_order.hpp"

#include "reprise/runtime/assert.hpp"

#include <fmt/core.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace reprise::trace {
namespace {

constexpr std::string_view magic_line = "reprise-sim-order 1";
/// A world runs far fewer recorded runs than this; a count past it is damage.
constexpr std::uint64_t traces_max = std::uint64_t{1} << 20;
/// The largest file read back: about 3 bytes a run, so hundreds of millions of runs (days of a
/// busy simulated cluster). A larger one is refused before anything is read or allocated.
constexpr std::uint64_t file_bytes_max = std::uint64_t{1} << 30;

void put_varint(std::string& out, std::uint64_t v) {
    while (v >= 0x80) {
        out.push_back(static_cast<char>((v & 0x7f) | 0x80));
        v >>= 7;
    }
    out.push_back(static_cast<char>(v));
}

bool get_varint(std::string_view& in, std::uint64_t& v) {
    // Nearly every run's numbers are one byte: that case first, then the general loop.
    if (!in.empty() && (static_cast<std::uint8_t>(in.front()) & 0x80) == 0) {
        v = static_cast<std::uint8_t>(in.front());
        in.remove_prefix(1);
        return true;
    }
    v = 0;
    const char* p = in.data();
    const char* const end = p + in.size();
    for (unsigned shift = 0; shift < 64 && p != end; shift += 7) {
        const auto byte = static_cast<std::uint8_t>(*p++);
        if (shift == 63 && byte > 1)
            return false;  // past 64 bits
        v |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
        if ((byte & 0x80) == 0) {
            in.remove_prefix(static_cast<std::size_t>(p - in.data()));
            return true;
        }
    }
    return false;
}

bool plain_name(std::string_view s) {
    if (s.empty() || s.size() > 4096)
        return false;
    for (const char c : s)
        if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f)
            return false;
    return true;
}

// The next line of `in` (without its '\n'); false at the end of the text part.
bool next_line(std::string_view& in, std::string_view& line) {
    const auto nl = in.find('\n');
    if (nl == std::string_view::npos || nl > 8192)
        return false;
    line = in.substr(0, nl);
    in.remove_prefix(nl + 1);
    return true;
}

// Splits `line` on single spaces into exactly `n` words.
bool words(std::string_view line, std::string_view* out, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
        const auto sp = line.find(' ');
        if ((sp == std::string_view::npos) != (i + 1 == n))
            return false;
        out[i] = line.substr(0, sp);
        if (out[i].empty())
            return false;
        line.remove_prefix(sp == std::string_view::npos ? line.size() : sp + 1);
    }
    return true;
}

bool number(std::string_view text, std::uint64_t& v) {
    auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    return ec == std::errc{} && p == text.data() + text.size();
}

} // namespace

std::uint32_t RunOrderLog::add_trace(std::string file, std::string node, std::uint64_t seed) {
    if (unwritable_.empty() && (!plain_name(file) || file.find('/') != std::string::npos || !plain_name(node)))
        unwritable_ = fmt::format("the trace file name '{}' or node name '{}' is empty or holds a space, a slash "
                                  "or a control character",
                                  file, node);
    traces_.push_back({std::move(file), std::move(node), seed, 0});
    return static_cast<std::uint32_t>(traces_.size() - 1);
}

void RunOrderLog::ticks(std::uint32_t index, std::uint64_t count) {
    REPRISE_ASSERT(index < traces_.size());
    if (count == 0)
        return;
    traces_[index].ticks += count;
    if (index == last_) {
        last_ticks_ += count;
        return;
    }
    if (last_ != UINT32_MAX) {
        put_varint(runs_, last_);
        put_varint(runs_, last_ticks_);
        ++runs_count_;
    }
    last_ = index;
    last_ticks_ = count;
}

std::string RunOrderLog::encode() const {
    std::string out = fmt::format("{}\ntraces {}\n", magic_line, traces_.size());
    for (const RunOrderTrace& t : traces_)
        out += fmt::format("{} {} {} {}\n", t.file, t.node, t.seed, t.ticks);
    out += fmt::format("runs {}\n", runs_count_ + (last_ != UINT32_MAX ? 1 : 0));
    out += runs_;
    if (last_ != UINT32_MAX) {
        put_varint(out, last_);
        put_varint(out, last_ticks_);
    }
    return out;
}

bool RunOrderLog::write(const std::string& folder, std::string& error) const {
    if (!unwritable_.empty()) {
        error = fmt::format("{}/{} not written: {}", folder, run_order_file_name, unwritable_);
        return false;
    }
    const std::string bytes = encode();
    const std::string path = fmt::format("{}/{}", folder, run_order_file_name);
    const std::string tmp = path + ".tmp";
    // 0600, as the traces beside it.
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    std::FILE* f = fd < 0 ? nullptr : ::fdopen(fd, "wb");
    if (f == nullptr) {
        if (fd >= 0)
            ::close(fd);
        error = fmt::format("cannot write {}: {}", tmp, std::strerror(errno));
        return false;
    }
    const bool written = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
    int failure = written ? 0 : errno;
    // A buffered write's error (a full disk) shows at the close.
    if (std::fclose(f) != 0 && failure == 0)
        failure = errno != 0 ? errno : EIO;
    if (failure == 0 && std::rename(tmp.c_str(), path.c_str()) != 0)
        failure = errno;
    if (failure != 0) {
        error = fmt::format("cannot write {}: {}", path, std::strerror(failure));
        ::unlink(tmp.c_str());
        return false;
    }
    return true;
}

bool read_run_order(const std::string& path, RunOrder& out, std::string& error) {
    out = {};
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (f == nullptr) {
        error = fmt::format("cannot open {}: {}", path, std::strerror(errno));
        return false;
    }
    struct stat st {};
    if (::fstat(::fileno(f), &st) == 0 && S_ISREG(st.st_mode) && static_cast<std::uint64_t>(st.st_size) > file_bytes_max) {
        std::fclose(f);
        error = fmt::format("{}: {} bytes, more than the {} a run order may have", path, st.st_size, file_bytes_max);
        return false;
    }
    std::string data;
    char buf[1 << 16];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) {
        data.append(buf, n);
        if (data.size() > file_bytes_max) {
            std::fclose(f);
            error = fmt::format("{}: more than the {} bytes a run order may have", path, file_bytes_max);
            return false;
        }
    }
    const bool read_failed = std::ferror(f) != 0;
    const int read_errno = errno;
    std::fclose(f);
    if (read_failed) {
        error = fmt::format("cannot read {}: {}", path, std::strerror(read_errno));
        return false;
    }
    return parse_run_order(data, path, out, error);
}

bool parse_run_order(std::string_view data, std::string_view name, RunOrder& out, std::string& error) {
    out = {};
    auto bad = [&](std::string_view what) {
        error = fmt::format("{}: {} (a simulation's run order, format 1, was expected)", name, what);
        out = {};
        return false;
    };
    std::string_view in = data, line;
    if (!next_line(in, line) || line != magic_line)
        return bad("not a run order file: its first line is not 'reprise-sim-order 1'");
    std::string_view w[4];
    std::uint64_t count = 0;
    if (!next_line(in, line) || !words(line, w, 2) || w[0] != "traces" || !number(w[1], count) || count > traces_max ||
        count > in.size() / 8)  // a trace line takes 8 bytes at least ("f n 0 0\n")
        return bad("no 'traces N' line");
    out.traces.resize(count);
    for (RunOrderTrace& t : out.traces) {
        if (!next_line(in, line) || !words(line, w, 4) || !number(w[2], t.seed) || !number(w[3], t.ticks) ||
            w[0].find('/') != std::string_view::npos || !plain_name(w[0]) || !plain_name(w[1]))
            return bad("a trace line is not 'FILE NODE SEED TICKS'");
        t.file = w[0];
        t.node = w[1];
    }
    std::uint64_t runs = 0;
    if (!next_line(in, line) || !words(line, w, 2) || w[0] != "runs" || !number(w[1], runs) || runs > in.size() / 2)
        return bad("no 'runs N' line, or fewer bytes than N runs take");
    // The runs are checked here and kept as stored (RunCursor decodes them again as they are
    // followed): memory stays the file's size.
    const std::string_view stored = in;
    std::vector<std::uint64_t> seen(out.traces.size(), 0);
    std::uint64_t previous = UINT64_MAX;
    for (std::uint64_t i = 0; i < runs; ++i) {
        std::uint64_t index = 0, ticks = 0;
        if (!get_varint(in, index) || !get_varint(in, ticks))
            return bad(fmt::format("run {} of {} is cut or damaged", i + 1, runs));
        if (index >= out.traces.size() || ticks == 0)
            return bad(fmt::format("run {} names trace {} of {} and {} ticks", i + 1, index, out.traces.size(), ticks));
        if (index == previous)
            return bad(fmt::format("runs {} and {} both name trace {} (one run would)", i, i + 1, index));
        if (seen[index] + ticks < ticks)
            return bad(fmt::format("trace {}'s ticks pass 2^64", index));
        seen[index] += ticks;
        previous = index;
    }
    out.run_count = runs;
    out.runs.assign(stored.substr(0, stored.size() - in.size()));
    if (!in.empty())
        return bad(fmt::format("{} byte(s) follow its last run", in.size()));
    for (std::size_t i = 0; i < out.traces.size(); ++i)
        if (seen[i] != out.traces[i].ticks)
            return bad(fmt::format("its runs give {} {} ticks, its trace line {}", out.traces[i].file, seen[i],
                                   out.traces[i].ticks));
    return true;
}

bool RunCursor::next(std::uint32_t& index, std::uint64_t& ticks) noexcept {
    if (left_ == 0)
        return false;
    std::uint64_t i = 0;
    const bool ok = get_varint(in_, i) && get_varint(in_, ticks);
    REPRISE_ASSERT_MSG(ok, "a run order's runs were checked when it was read");
    index = static_cast<std::uint32_t>(i);
    --left_;
    return true;
}

std::vector<std::pair<std::uint32_t, std::uint64_t>> all_runs(const RunOrder& order) {
    std::vector<std::pair<std::uint32_t, std::uint64_t>> out;
    RunCursor cursor(order);
    std::uint32_t index = 0;
    std::uint64_t ticks = 0;
    while (cursor.next(index, ticks))
        out.emplace_back(index, ticks);
    return out;
}

} // namespace reprise::trace
