// A trace's lock, its run's outcome file, and which old runs of a --record pattern retention removes.
#include "reprise/record/trace_state.hpp"

#include "reprise/runtime/limits.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace reprise::trace {

namespace {

constexpr std::string_view outcome_magic = "reprise-outcome 1";
/// An outcome file is a few lines; anything longer is not one.
constexpr std::size_t outcome_bytes_max = 4096;

// Appends to a fixed buffer without allocating (the crash path writes outcomes).
struct Line {
    char* p;
    char* end;
    bool ok = true;
    void put(std::string_view s) noexcept {
        if (static_cast<std::size_t>(end - p) < s.size()) {
            ok = false;
            return;
        }
        std::memcpy(p, s.data(), s.size());
        p += s.size();
    }
    template <class Int>
    void put_int(Int v) noexcept {
        auto [next, ec] = std::to_chars(p, end, v);
        if (ec != std::errc{}) {
            ok = false;
            return;
        }
        p = next;
    }
};

// The names of the outcome file's values, one table per field (written and read from it).
template <class E>
using Names = std::array<std::pair<E, std::string_view>, 3>;
constexpr Names<Outcome::Ended> ended_names{{
    {Outcome::Ended::exited, "exited"}, {Outcome::Ended::crashed, "crashed"}, {Outcome::Ended::cut_off, "cut_off"}}};
constexpr Names<Outcome::Recording> recording_names{{{Outcome::Recording::complete, "complete"},
                                                     {Outcome::Recording::budget, "budget"},
                                                     {Outcome::Recording::failed, "failed"}}};

template <class E>
std::string_view name_of(E value, const Names<E>& names) noexcept {
    for (const auto& [v, name] : names)
        if (v == value)
            return name;
    return names[0].second;
}

template <class E>
bool parse_name(std::string_view text, const Names<E>& names, E& out) noexcept {
    for (const auto& [v, name] : names)
        if (name == text) {
            out = v;
            return true;
        }
    return false;
}

template <class Int>
bool parse_int(std::string_view text, Int& out) {
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    return !text.empty() && ec == std::errc{} && ptr == text.data() + text.size();
}

std::string signal_name(int signo) {
    if (const char* abbrev = ::sigabbrev_np(signo))
        return fmt::format("SIG{}", abbrev);
    return fmt::format("signal {}", signo);
}

// Whether an open file is locked by another open file description (a recorder).
bool locked_elsewhere(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return false;
    bool locked = false;
    if (::flock(fd, LOCK_SH | LOCK_NB) != 0)
        locked = errno == EWOULDBLOCK;
    else
        ::flock(fd, LOCK_UN);
    ::close(fd);
    return locked;
}

} // namespace

std::string outcome_path(std::string_view trace_path) {
    std::string out(trace_path);
    out += ".outcome";
    return out;
}

bool write_outcome(const char* path, const char* tmp_path, const Outcome& o) noexcept {
    char buf[512];
    Line l{buf, buf + sizeof buf};
    l.put(outcome_magic);
    l.put("\nended ");
    l.put(name_of(o.ended, ended_names));
    l.put("\nexit_code ");
    l.put_int(o.exit_code);
    l.put("\nsignal ");
    l.put_int(o.signal);
    l.put("\nrecording ");
    l.put(name_of(o.recording, recording_names));
    l.put("\nstored_bytes ");
    l.put_int(o.stored_bytes);
    l.put("\nbudget_bytes ");
    l.put_int(o.budget_bytes);
    l.put("\nstart_wall_ns ");
    l.put_int(o.start_wall_ns);
    l.put("\n");
    if (!l.ok)
        return false;
    const int fd = ::open(tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return false;
    const char* p = buf;
    bool ok = true;
    while (p < l.p) {
        const ssize_t n = ::write(fd, p, static_cast<std::size_t>(l.p - p));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            ok = false;
            break;
        }
        p += n;
    }
    ok = ::fsync(fd) == 0 && ok;
    ::close(fd);
    if (!ok || ::rename(tmp_path, path) != 0) {
        ::unlink(tmp_path);
        return false;
    }
    return true;
}

std::optional<Outcome> read_outcome(const std::string& trace_path, std::string* error) {
    const std::string path = outcome_path(trace_path);
    auto fail = [&](std::string why) -> std::optional<Outcome> {
        if (error)
            *error = fmt::format("{}: {}", path, why);
        return std::nullopt;
    };
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        if (errno == ENOENT)
            return std::nullopt;
        return fail(std::strerror(errno));
    }
    std::string text(outcome_bytes_max + 1, '\0');
    std::size_t got = 0;
    while (got < text.size()) {
        const ssize_t n = ::read(fd, text.data() + got, text.size() - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += static_cast<std::size_t>(n);
    }
    ::close(fd);
    if (got > outcome_bytes_max)
        return fail(fmt::format("longer than an outcome file may be ({} bytes)", outcome_bytes_max));
    text.resize(got);
    std::string why;
    auto o = parse_outcome(text, why);
    if (!o)
        return fail(why);
    return o;
}

std::optional<Outcome> parse_outcome(std::string_view text, std::string& why) {
    auto fail = [&](std::string what) -> std::optional<Outcome> {
        why = std::move(what);
        return std::nullopt;
    };
    if (text.size() > outcome_bytes_max)
        return fail(fmt::format("longer than an outcome file may be ({} bytes)", outcome_bytes_max));
    std::string_view rest = text;
    auto next_line = [&] {
        const std::size_t nl = rest.find('\n');
        std::string_view line = rest.substr(0, nl);
        rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
        return line;
    };
    if (next_line() != outcome_magic)
        return fail("not an outcome file (its first line is not 'reprise-outcome 1')");
    Outcome o;
    bool have_ended = false;
    while (!rest.empty()) {
        const std::string_view line = next_line();
        const std::size_t space = line.find(' ');
        const std::string_view key = line.substr(0, space);
        const std::string_view value = space == std::string_view::npos ? std::string_view{} : line.substr(space + 1);
        bool ok = true;
        if (key == "ended") {
            have_ended = true;
            ok = parse_name(value, ended_names, o.ended);
        } else if (key == "recording") {
            ok = parse_name(value, recording_names, o.recording);
        } else if (key == "exit_code") {
            ok = parse_int(value, o.exit_code);
        } else if (key == "signal") {
            ok = parse_int(value, o.signal);
        } else if (key == "stored_bytes") {
            ok = parse_int(value, o.stored_bytes);
        } else if (key == "budget_bytes") {
            ok = parse_int(value, o.budget_bytes);
        } else if (key == "start_wall_ns") {
            ok = parse_int(value, o.start_wall_ns);
        }  // other keys: a later writer's, ignored
        if (!ok)
            return fail(fmt::format("bad line '{}'", line.substr(0, 80)));
    }
    if (!have_ended)
        return fail("it does not say how the run ended");
    return o;
}

std::string describe_outcome(const Outcome& o) {
    switch (o.ended) {
    case Outcome::Ended::exited: return fmt::format("exit code {}", o.exit_code);
    case Outcome::Ended::crashed: return fmt::format("run crashed with {}", signal_name(o.signal));
    case Outcome::Ended::cut_off:
        return o.recording == Outcome::Recording::budget
                   ? "cut off: the program's end is not recorded (it went on past the budget)"
                   : "cut off: the recording was closed before the program ended";
    }
    return "unknown";
}

bool being_written(const std::string& trace_path) {
    return locked_elsewhere(trace_path) || locked_elsewhere(trace_path + ".0");
}

std::optional<std::string> kept_because(bool live, const std::optional<Outcome>& outcome) {
    if (live)
        return std::string("still being written");
    if (!outcome)
        return std::string("cut off: no outcome recorded");
    if (outcome->ended == Outcome::Ended::exited && outcome->exit_code == 0)
        return std::nullopt;
    return describe_outcome(*outcome);
}

std::string describe_cut(const std::string& trace_path) {
    std::string why;
    auto o = read_outcome(trace_path, &why);
    if (being_written(trace_path)) {
        // A recording stopped at its budget (or a failed write) has its outcome file while the
        // program still runs: the trace is final, its process is not.
        if (o && o->ended == Outcome::Ended::cut_off && o->recording != Outcome::Recording::complete)
            return o->recording == Outcome::Recording::budget
                       ? fmt::format("the recording stopped at its budget of {} bytes; its process still runs, "
                                     "unrecorded (and holds the trace's lock)",
                                     o->budget_bytes)
                       : std::string("the recording stopped when a write failed; its process still runs, unrecorded "
                                     "(and holds the trace's lock)");
        return "it is still being written: a recording process holds its lock";
    }
    if (!o)
        return why.empty() ? std::string("the recording was cut off: no outcome recorded (the process was killed, "
                                         "or the machine stopped)")
                           : fmt::format("the recording was cut off ({})", why);
    if (o->recording == Outcome::Recording::budget)
        return fmt::format("the recording stopped at its budget of {} bytes, and the program went on unrecorded "
                           "({})",
                           o->budget_bytes, describe_outcome(*o));
    if (o->recording == Outcome::Recording::failed)
        return fmt::format("the recording stopped when a write failed, and the program went on unrecorded ({})",
                           describe_outcome(*o));
    if (o->ended == Outcome::Ended::crashed)
        return fmt::format("the recording was cut off: the {}", describe_outcome(*o));
    if (o->ended == Outcome::Ended::cut_off)
        return "the recording was cut off: it was closed before the program ended, as when a node crashes in a "
               "simulation or a runtime is taken down while its program runs";
    return fmt::format("the recording was cut off ({})", describe_outcome(*o));
}

bool pattern_matches(std::string_view pattern, std::string_view name, std::uint64_t* counter) {
    if (pattern.empty())
        return name.empty();
    if (pattern[0] != '%' || pattern.size() == 1)
        return !name.empty() && name[0] == pattern[0] && pattern_matches(pattern.substr(1), name.substr(1), counter);
    const char kind = pattern[1];
    const std::string_view after = pattern.substr(2);
    auto digits = [](std::string_view s) {
        std::size_t n = 0;
        while (n < s.size() && s[n] >= '0' && s[n] <= '9')
            ++n;
        return n;
    };
    switch (kind) {
    case 'c':
    case 'p': {
        // One or more digits; the longest first, then shorter (a digit may follow in the pattern).
        for (std::size_t n = digits(name); n >= 1; --n)
            if (pattern_matches(after, name.substr(n), counter)) {
                std::uint64_t value = 0;
                if (kind == 'c' && counter && parse_int(name.substr(0, n), value))
                    *counter = value;
                return true;
            }
        return false;
    }
    case 't': {
        // 20261130T151000Z
        if (name.size() < 16 || digits(name) != 8 || name[8] != 'T' || digits(name.substr(9)) != 6 || name[15] != 'Z')
            return false;
        return pattern_matches(after, name.substr(16), counter);
    }
    case 'n':
        for (std::size_t n = 1; n <= name.size(); ++n)
            if (pattern_matches(after, name.substr(n), counter))
                return true;
        return false;
    case '%':
        return !name.empty() && name[0] == '%' && pattern_matches(after, name.substr(1), counter);
    default:
        return name.size() >= 2 && name[0] == '%' && name[1] == kind && pattern_matches(after, name.substr(2), counter);
    }
}

std::vector<OldRun> find_runs(const std::string& folder, std::string_view name_pattern, std::string* error) {
    namespace fs = std::filesystem;
    std::vector<OldRun> runs;
    std::error_code ec;
    fs::directory_iterator it(folder.empty() ? fs::path(".") : fs::path(folder), ec);
    if (ec) {
        if (error && ec != std::errc::no_such_file_or_directory)
            *error = fmt::format("cannot list {}: {}", folder, ec.message());
        return runs;
    }
    // Name -> its run; a segment (NAME.N) joins the run NAME.
    auto run_of = [&](const std::string& name) -> OldRun& {
        const std::string path = folder.empty() ? name : (fs::path(folder) / name).string();
        for (OldRun& r : runs)
            if (r.path == path)
                return r;
        OldRun& r = runs.emplace_back();
        r.path = path;
        std::uint64_t counter = 0;
        if (pattern_matches(name_pattern, name, &counter) && name_pattern.find("%c") != std::string_view::npos)
            r.counter = counter;
        return r;
    };
    for (std::size_t seen = 0; it != fs::directory_iterator(); it.increment(ec), ++seen) {
        if (ec)
            break;
        if (seen >= limits::retention_folder_entries_max) {
            if (error)
                *error = fmt::format("{} holds more than {} entries: only the first were looked at", folder,
                                     limits::retention_folder_entries_max);
            break;
        }
        const std::string name = it->path().filename().string();
        if (!it->is_regular_file(ec))
            continue;
        // Outcome files (and one being written) go with their trace, found by its name below.
        if (name.ends_with(".outcome") || name.ends_with(".outcome.tmp"))
            continue;
        const std::size_t dot = name.rfind('.');
        const std::string_view suffix = dot == std::string::npos ? std::string_view{} : std::string_view(name).substr(dot + 1);
        const bool numbered = !suffix.empty() && std::all_of(suffix.begin(), suffix.end(), [](char c) { return c >= '0' && c <= '9'; });
        std::string run_name;
        if (numbered && pattern_matches(name_pattern, std::string_view(name).substr(0, dot)))
            run_name = name.substr(0, dot);  // a segment
        else if (pattern_matches(name_pattern, name))
            run_name = name;
        else
            continue;
        OldRun& r = run_of(run_name);
        r.files.push_back(it->path().string());
        r.bytes += it->file_size(ec);
        const auto changed = it->last_write_time(ec);
        if (!ec)
            r.order_ns = std::max<std::int64_t>(
                r.order_ns, std::chrono::duration_cast<std::chrono::nanoseconds>(changed.time_since_epoch()).count());
    }
    for (OldRun& r : runs) {
        std::sort(r.files.begin(), r.files.end());
        r.live = being_written(r.path);
        r.outcome = read_outcome(r.path);
        const std::string sidecar = outcome_path(r.path);
        if (r.outcome) {
            r.order_ns = r.outcome->start_wall_ns;
            r.bytes += fs::file_size(sidecar, ec);
        }
        if (fs::exists(sidecar, ec))
            r.files.push_back(sidecar);  // removed last: a run half removed still says how it ended
    }
    std::sort(runs.begin(), runs.end(), [](const OldRun& a, const OldRun& b) {
        if (a.order_ns != b.order_ns)
            return a.order_ns < b.order_ns;
        if (a.counter != b.counter)
            return a.counter < b.counter;
        return a.path < b.path;
    });
    return runs;
}

RetentionPlan plan_retention(const std::vector<OldRun>& runs, const RetentionPolicy& policy) {
    RetentionPlan plan;
    plan.kept_runs = runs.size();
    for (const OldRun& r : runs) {
        plan.kept_bytes += r.bytes;
        if (kept_because(r.live, r.outcome))
            plan.pinned_bytes += r.bytes;
    }
    const std::uint64_t bytes_target =
        policy.keep_bytes == 0 ? UINT64_MAX : policy.keep_bytes - std::min(policy.reserve_bytes, policy.keep_bytes);
    for (std::size_t i = 0; i < runs.size(); ++i) {
        const bool too_many = policy.keep_runs > 0 && plan.kept_runs > policy.keep_runs - 1;
        const bool too_big = plan.kept_bytes > bytes_target;
        if (!too_many && !too_big)
            break;
        if (kept_because(runs[i].live, runs[i].outcome))
            continue;
        plan.remove.push_back(i);
        --plan.kept_runs;
        plan.kept_bytes -= runs[i].bytes;
    }
    if (policy.keep_bytes > 0) {
        plan.over_budget = plan.pinned_bytes >= policy.keep_bytes;
        plan.room_bytes = plan.kept_bytes >= policy.keep_bytes ? 0 : policy.keep_bytes - plan.kept_bytes;
    }
    return plan;
}

} // namespace reprise::trace
