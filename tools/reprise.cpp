// reprise: the command line tool on traces (info, dump, verify, diff, cluster, load, debug, keygen).
#include <reprise/record/chunk.hpp>
#include <reprise/record/codec.hpp>
#include <reprise/record/json.hpp>
#include <reprise/record/trace.hpp>
#include <reprise/record/trace_state.hpp>
#include <reprise/runtime/main.hpp>

#include "cluster.hpp"
#include "debug.hpp"
#include "decoders.hpp"
#include "load.hpp"

#include <CLI/CLI.hpp>

#include <fmt/core.h>

#include <algorithm>
#include <charconv>
#include <climits>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#ifndef REPRISE_VERSION
#define REPRISE_VERSION "unknown"
#endif

namespace {

namespace trace = reprise::trace;

// Exit codes shared by every command.
constexpr int exit_ok = 0;
constexpr int exit_failed = 1;  ///< verify: not intact; diff: the traces differ; dump: the trace is damaged
constexpr int exit_usage = 2;   ///< bad command line, or a trace that cannot be opened

constexpr const char* main_help = R"(Usage: reprise COMMAND [OPTIONS] TRACE...

Inspects traces written by programs on the reprise runtime (--record=TRACE).
A segmented trace (TRACE.0, TRACE.1, ...) is named without its suffix.

Commands:
  info TRACE             what the header says, record counts, time span and whether it is complete
  dump TRACE...          one line per event (--json for JSON lines; --from, --to, --kind, --handle,
                         --node to select; --full for every byte)
  verify TRACE           checks every chunk and the end record; exit 0 when intact and complete
  diff A B               the first event where two traces differ
  cluster check|log|timeline TRACE...|DIR
                         several nodes' traces as one cluster: connections paired and checked
                         byte for byte, one happens-before ordered log, a Perfetto/HTML timeline
  load TRACE --to HOST:PORT
                         drives a live server with the trace's recorded inbound traffic, compares its answers
  debug TRACE...|DIR     gdb on a replay of the trace (several traces or a folder: a cluster's
                         nodes in one process), the program found from the header, the gdb
                         extension loaded (reprise tasks, reprise goto N, reprise back...)
  keygen FILE            a new key for sealed traces (--record-key=FILE), in a new file of mode 0600
  help [COMMAND]         this text, or a command's

Options:
  -h, --help             this text (after a command: the command's help)
  --version              the tool's version and the trace format version it reads
  --record-key FILE      the key of a sealed trace (every command that reads traces takes it;
                         else REPRISE_RECORD_KEY names the file, as for the programs)

Events are numbered from 0 in trace order (#N), as replay numbers them for --break-at=N.
Virtual time is a tick's monotonic time minus the trace's start time, as replay reports it.

Exit codes: 0 success; 1 the trace is damaged (dump, verify) or has no end record (verify),
or the traces differ (diff), and for verify any file that is not an intact trace; 2 a bad
command line or (but for verify) a file that is not a readable trace;
cluster, load and debug have a code 3 of their own (their help says). debug replaces itself with
gdb: once gdb runs, the exit code is gdb's.
)";

constexpr const char* info_help = R"(Usage: reprise info TRACE [--record-key FILE]

Prints the header (node, program, executable, working directory, program arguments, seed,
start time, runtime version, build id, format version, segments), the bytes as stored and
as records (compression), how many chunks are compressed and sealed, the number of records
of each kind (wake-ups, inputs and
outputs also by their own kind), the number of ticks, the virtual time from the first
tick to the last, the payload bytes, and how the trace ends: closed cleanly (the end
record and the program's exit code), or cut off or damaged (the reader's message, the
byte offset and the last good event); whether a recording process still writes it (it
holds the trace's lock) or how its run ended (the outcome file the recorder writes beside
the trace, PATH.outcome: exit code, fatal signal, recording stopped at its budget); and
whether retention (--record-keep, --record-keep-bytes) keeps it whatever the budget, and why.

A sealed trace without its key (or with another key) shows its header and says so.

Exit code: 0 when the header could be read (whatever the state of the rest: use
`reprise verify` for a yes/no answer), 2 otherwise.
)";

constexpr const char* dump_help = R"(Usage: reprise dump TRACE... [--json] [--from N] [--to N] [--kind K[,K...]]
                    [--handle H[,H...]] [--node NAME] [--bytes N | --full]

Prints one event per line: its index (#N), its virtual time in seconds, and the record.
Given several traces (the nodes of a cluster, a node's runs), dumps each in turn, in the
order given, each numbered from its own event 0, and starts every line with the trace's node.

Options:
  --json        one JSON object per line: "index", "vt_ns" (virtual time in nanoseconds)
                and the record's fields (bytes as hex in "data_hex", always in full); with
                several traces, "node" too. An errno gets its name beside its number:
                "errno_name" for an io_error wake-up's "value", "error_name" for a failed
                connect's "error"; listen and connect inputs add their decoded "result"
  --from N      start at event N (default 0)
  --to N        stop after event N (inclusive; default: the last event)
  --kind K      only records of kind K: a record kind (tick, wake, input, output, spawn,
                end, accepted, connected, annotation), a wake-up kind (timer_fired,
                bytes_read, eof, io_error, drained, signal, offload_done), an input kind
                (precise_clock, secure_random, env, app, listen, connect, output_left, secret)
                or an output kind (conn_write, exit). Repeat the option or separate kinds by
                commas for several.
  --handle H    only events on handle H: wake-ups and outputs of H, the accepted record
                that created connection H or that listener H accepted, the connected record
                of H, H's output_left inputs, and the spawn of task H. Listen and connect
                inputs name an address, not a handle: select them with --kind. Repeat the
                option or separate handles by commas for several; --kind narrows further
  --node NAME   only the traces whose header names node NAME; another trace prints
                nothing, and says so on stderr
  --bytes N     print at most N bytes of each payload (data read, input values, written
                bytes recorded in full, names); default 64. A shortened payload says so
                where it is cut, with how many bytes were left out
  --full        print every byte of every payload (--json always does)

Errno values are printed by name (ECONNREFUSED), or as a number when the C library has
no name for them.

Exit code: 0 when the selected events were read; 1 when a trace is damaged before
--to (the events up to the damage are printed; the message goes to stderr); 2 on a bad
command line or an unreadable file (the other traces are still dumped). A trace cut off
without damage (no end record) exits 0 with a note on stderr.
)";

constexpr const char* keygen_help = R"(Usage: reprise keygen FILE

Creates FILE (never replacing one) with a fresh random 256-bit key, as 64 hex digits, mode
0600. A program recorded with --record-key=FILE seals every chunk of its trace with it
(XChaCha20-Poly1305); replaying the trace, and every command of this tool, then need
--record-key=FILE too. Lose the key and the trace cannot be read.

Exit code: 0 when the key was written; 2 otherwise (the file exists, or cannot be created).
)";

constexpr const char* verify_help = R"(Usage: reprise verify TRACE

Reads the whole trace: the header and every chunk (length, crc32c), decodes every
record, and checks that the trace ends with an end record followed by nothing.

Exit code: 0 with a one-line OK summary when the trace is intact and complete, or
intact and stopped at its recording budget (its outcome file says so: the program went on
unrecorded, so there is no end record); 1 when it is damaged (the first bad byte offset
and the last good event are printed) or incomplete (no end record: the recording was cut
off, or is still being written: a recording process holds its lock), and also for a file
that is not a trace at all (empty, another kind of file, a damaged header): verify answers
"is this an intact trace?", where info and dump exit 2 on such a file; 2 on a bad command
line, a file or trace that does not exist, a folder, or a sealed trace without its key
(--record-key FILE) or with another key.
)";

constexpr const char* diff_help = R"(Usage: reprise diff A B

Compares two traces event by event and prints the first event where they differ, with
both sides. Tick records compare by virtual time (the time since each trace's first
tick, monotonic and wall clock), not by absolute time; every other field compares
exactly, wake-up data byte for byte. Differences in the headers (node, arguments, seed,
build id, runtime version) are printed as notes and do not count as a difference.

Exit code: 0 when the traces hold the same events; 1 when they differ (the index and
both records are printed); 2 when either cannot be read, or when one is damaged at a
point up to which both agree (they cannot be compared past it).
)";

// --- small helpers ----------------------------------------------------------------

// Bytes and strings from a (hostile) file, safe for a terminal (tools/decoders.hpp).
using reprise::tool::escaped;
using reprise::tool::shown;

// Nanoseconds as seconds with nine decimals, computed in integers.
std::string seconds(std::int64_t ns) {
    const bool negative = ns < 0;
    const std::uint64_t magnitude = negative ? 0 - static_cast<std::uint64_t>(ns) : static_cast<std::uint64_t>(ns);
    return fmt::format("{}{}.{:09}", negative ? "-" : "", magnitude / 1'000'000'000u, magnitude % 1'000'000'000u);
}

// Wall-clock nanoseconds since the Unix epoch as ISO-8601 UTC (computed, no clock is read).
std::string iso8601(std::int64_t wall_ns) {
    constexpr std::int64_t ns_per_s = 1'000'000'000;
    constexpr std::int64_t s_per_day = 86'400;
    std::int64_t secs = wall_ns / ns_per_s;
    std::int64_t frac = wall_ns % ns_per_s;
    if (frac < 0) {
        frac += ns_per_s;
        --secs;
    }
    std::int64_t days = secs / s_per_day;
    std::int64_t in_day = secs % s_per_day;
    if (in_day < 0) {
        in_day += s_per_day;
        --days;
    }
    const std::chrono::year_month_day date{std::chrono::sys_days{std::chrono::days{days}}};
    if (!date.ok())
        return fmt::format("{} ns since the epoch", wall_ns);
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z", static_cast<int>(date.year()),
                       static_cast<unsigned>(date.month()), static_cast<unsigned>(date.day()), in_day / 3600,
                       in_day / 60 % 60, in_day % 60, frac);
}

// The name of a record's own sub-kind (wake-up, input or output kind), or nullptr.
const char* sub_kind_name(const trace::Record& r) {
    if (const auto* w = std::get_if<trace::Wake>(&r))
        return reprise::wake_kind_name(w->wake);
    if (const auto* i = std::get_if<trace::Input>(&r))
        return reprise::input_kind_name(i->input);
    if (const auto* o = std::get_if<trace::Output>(&r))
        return reprise::output_kind_name(o->output);
    return nullptr;
}

// Every name --kind accepts, in the order the help lists them: record kinds, then the
// kinds of wake-ups, inputs and outputs (accepted and connected are record kinds).
std::vector<std::string> kind_names() {
    std::vector<std::string> names;
    for (int k = 1; k <= trace::record_kind_last; ++k)
        names.emplace_back(trace::record_kind_name(static_cast<trace::RecordKind>(k)));
    for (int k = 1; k <= reprise::wake_kind_last; ++k) {
        auto w = static_cast<reprise::WakeKind>(k);
        if (w != reprise::WakeKind::accepted && w != reprise::WakeKind::connected)
            names.emplace_back(reprise::wake_kind_name(w));
    }
    for (int k = 1; k <= reprise::input_kind_last; ++k)
        names.emplace_back(reprise::input_kind_name(static_cast<reprise::InputKind>(k)));
    for (int k = 1; k <= reprise::output_kind_last; ++k)
        names.emplace_back(reprise::output_kind_name(static_cast<reprise::OutputKind>(k)));
    return names;
}

// --- the command line -------------------------------------------------------------------

// One command's arguments: its options (with or without a value) and its operands.
struct Args {
    std::vector<std::string> operands;
    std::map<std::string, std::vector<std::string>> options;
    std::vector<std::string> rest;  ///< after `--`, for commands that pass them on (debug: to gdb)
    bool help = false;

    bool has(const std::string& name) const { return options.count(name) != 0; }
};

int usage_error(std::string_view command, std::string_view message) {
    fmt::print(stderr, "reprise{}{}: {}\nTry 'reprise {}--help'.\n", command.empty() ? "" : " ", command, message,
               command.empty() ? std::string() : std::string(command) + " ");
    return exit_usage;
}

std::optional<std::uint64_t> parse_index(std::string_view text) {
    std::uint64_t v = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc{} || end != text.data() + text.size() || text.empty())
        return std::nullopt;
    return v;
}

// Parses a command's options with CLI11 (`--name`, `--name=value`, `--name value`; `--` ends
// the options). Returns a message on an unknown option (naming the closest known one) or a
// missing value.
std::optional<std::string> parse_args(int argc, char** argv, int first, const std::set<std::string>& flags,
                                      const std::set<std::string>& valued, Args& out) {
    std::vector<std::string> known{"--help"};
    known.insert(known.end(), flags.begin(), flags.end());
    known.insert(known.end(), valued.begin(), valued.end());
    for (int i = first; i < argc; ++i) {
        std::string_view a = argv[i];
        if (a == "--")
            break;
        if (a.size() < 2 || a[0] != '-' || a == "-h")
            continue;
        std::string name(a.substr(0, a.find('=')));
        if (std::find(known.begin(), known.end(), name) != known.end())
            continue;
        std::string near = reprise::closest_flag(name, known);
        return near.empty() ? fmt::format("unknown option {}", shown(a))
                            : fmt::format("unknown option {}; did you mean {}?", shown(name), near);
    }

    CLI::App app;
    app.set_help_flag();
    app.add_flag("-h,--help", out.help);
    std::map<std::string, std::size_t> counts;
    for (const std::string& f : flags)
        app.add_flag(f, counts[f]);
    std::map<std::string, std::vector<std::string>> values;
    for (const std::string& v : valued)
        app.add_option(v, values[v])->allow_extra_args(false)->take_all();
    app.add_option("operands", out.operands);
    std::vector<std::string> reversed;  // CLI11 takes the arguments last first
    for (int i = argc - 1; i >= first; --i)
        reversed.emplace_back(argv[i]);
    try {
        app.parse(reversed);
    } catch (const CLI::ParseError& e) {
        return std::string(e.what());
    }
    for (const auto& [name, n] : counts)
        if (n > 0)
            out.options[name];
    for (auto& [name, list] : values)
        if (!list.empty())
            out.options[name] = std::move(list);
    return std::nullopt;
}

// --- reading a trace ------------------------------------------------------------------------

// A reader plus what every command needs: the current event's index and virtual
// time, the first tick's times, and the last good event for messages.
struct Cursor {
    std::string name;             ///< the trace as the user named it
    trace::Reader reader;
    trace::Record record;
    std::uint64_t index = 0;      ///< of `record`, once next() returned true
    std::uint64_t count = 0;      ///< records read
    std::int64_t tick_mono_ns = 0;
    std::int64_t tick_wall_ns = 0;
    std::optional<std::int64_t> first_tick_mono_ns;
    std::optional<std::int64_t> first_tick_wall_ns;
    std::string last_good;        ///< describe() of the last record read
    std::string before_last_good; ///< describe() of the record before it

    Cursor(std::string n, trace::Reader r) : name(std::move(n)), reader(std::move(r)) {
        tick_mono_ns = reader.header().start_mono_ns;
        tick_wall_ns = reader.header().start_wall_ns;
    }

    bool next() {
        if (!reader.next(record))
            return false;
        index = count++;
        if (const auto* tick = std::get_if<trace::Tick>(&record)) {
            tick_mono_ns = tick->mono_ns;
            tick_wall_ns = tick->wall_ns;
            if (!first_tick_mono_ns) {
                first_tick_mono_ns = tick->mono_ns;
                first_tick_wall_ns = tick->wall_ns;
            }
        }
        before_last_good = std::move(last_good);
        last_good = trace::describe(record);
        return true;
    }

    /// Virtual time of the current event: its tick's time since the trace's start.
    std::int64_t vt_ns() const { return tick_mono_ns - reader.header().start_mono_ns; }

    /// "#N description" of the last good event, or "(none)".
    std::string last_good_event() const {
        return count == 0 ? std::string("(none: no event could be read)") : fmt::format("#{} {}", count - 1, last_good);
    }

    /// Where and why reading stopped early, in one sentence.
    std::string damage() const {
        const trace::ReadError& e = *reader.error();
        return fmt::format("{} at byte offset {} of {}", e.message, e.offset, e.path);
    }
};

// The key given with --record-key, for sealed traces (loaded once, before a command runs).
std::optional<trace::TraceKey> trace_key;

const trace::TraceKey* key() { return trace_key ? &*trace_key : nullptr; }

/// Whether a reader's refusal is about the key (missing or wrong), not about the file.
bool key_problem(const std::string& why) {
    return why.find("the trace is encrypted") != std::string::npos || why.find("with this key") != std::string::npos;
}

std::optional<Cursor> open_trace(const std::string& path, std::string_view command, int& exit_code) {
    std::string why;
    auto r = trace::Reader::open(path, &why, key());
    if (!r.ok()) {
        fmt::print(stderr, "reprise {}: {}\n", command, why);
        exit_code = exit_usage;
        return std::nullopt;
    }
    return Cursor(trace::Reader::trace_name(path), std::move(*r));
}

// Sum of the sizes of a trace's files.
std::uint64_t file_bytes(const Cursor& c) {
    std::error_code ec;
    std::uint64_t total = 0;
    if (c.reader.segments() == 1 && std::filesystem::exists(c.name, ec)) {
        auto n = std::filesystem::file_size(c.name, ec);
        return ec ? 0 : n;
    }
    for (std::size_t i = 0; i < c.reader.segments(); ++i) {
        auto n = std::filesystem::file_size(fmt::format("{}.{}", c.name, i), ec);
        total += ec ? 0 : n;
    }
    return total;
}

// --- info -------------------------------------------------------------------------------------

// Who recorded a trace, where and when: the header's lines of `info`.
void print_identity(const trace::Header& h) {
    std::string argv;
    for (const std::string& a : h.argv)
        argv += (argv.empty() ? "" : " ") + shown(a);
    fmt::print("node             {}\n", shown(h.node));
    fmt::print("program          {}\n", h.program.empty() ? "(none)" : shown(h.program));
    fmt::print("executable       {}\n", h.executable.empty() ? "(unknown)" : shown(h.executable));
    fmt::print("directory        {}\n", h.working_directory.empty() ? "(unknown)" : shown(h.working_directory));
    fmt::print("argv             {}\n", argv.empty() ? "(none)" : argv);
    fmt::print("seed             {} (0x{:016x})\n", h.seed, h.seed);
    fmt::print("started          {} (wall clock); monotonic clock {} s\n", iso8601(h.start_wall_ns),
               seconds(h.start_mono_ns));
    fmt::print("runtime version  {}\n", shown(h.runtime_version));
    fmt::print("build id         {}\n", h.build_id.empty() ? "(none)" : shown(h.build_id));
}

// Whether a recorder still writes the trace, how its run ended, and what retention does with it.
// `end_exit_code`: the exit code of the trace's end record, when it has one (a sealed trace read
// without its key: unknown).
void print_retention(const std::string& path, std::optional<std::int64_t> end_exit_code = std::nullopt) {
    const bool live = trace::being_written(path);
    std::string why;
    const auto outcome = trace::read_outcome(path, &why);
    const bool stopped_live = live && outcome && outcome->ended == trace::Outcome::Ended::cut_off &&
                              outcome->recording != trace::Outcome::Recording::complete;
    fmt::print("being written    {}\n",
               !live           ? "no"
               : stopped_live ? "yes: its process still runs and holds the trace's lock (the recording itself has stopped)"
                               : "yes: a recording process holds the trace's lock");
    if (stopped_live) {
        // The outcome file was written when the recording stopped; the program's end comes later.
        fmt::print("outcome          not yet: the recording stopped {}, and the program goes on unrecorded; how it "
                   "ends is written when it does ({})\n",
                   outcome->recording == trace::Outcome::Recording::budget
                       ? fmt::format("at its budget of {} bytes", outcome->budget_bytes)
                       : std::string("when a write failed"),
                   trace::outcome_path(path));
    } else if (outcome) {
        std::string recording;
        if (outcome->recording == trace::Outcome::Recording::budget)
            recording = fmt::format("; the recording stopped at its budget of {} bytes", outcome->budget_bytes);
        else if (outcome->recording == trace::Outcome::Recording::failed)
            recording = "; the recording stopped when a write failed";
        fmt::print("outcome          {}{} ({})\n", trace::describe_outcome(*outcome), recording, trace::outcome_path(path));
    } else if (!why.empty()) {
        fmt::print("outcome          unreadable: {}\n", why);
    } else if (live) {
        fmt::print("outcome          none yet (written when the recording closes)\n");
    } else if (end_exit_code) {
        // The run ended (its end record says so): the outcome file did not come with the trace.
        fmt::print("outcome          no outcome file beside the trace, though the trace has its end record (exit code "
                   "{}): the file was not copied with it, or was removed\n",
                   *end_exit_code);
    } else {
        fmt::print("outcome          none recorded (the process was killed, or the machine stopped)\n");
    }
    const auto kept = trace::kept_because(live, outcome);
    if (kept && !live && !outcome && why.empty() && end_exit_code)
        fmt::print("retention        kept whatever the budget: no outcome file (retention reads outcome files, never "
                   "traces: remove it by hand)\n");
    else
        fmt::print("retention        {}\n", kept ? fmt::format("kept whatever the budget: {}", *kept)
                                                   : std::string("may be removed by --record-keep/--record-keep-bytes "
                                                                 "(the run ended with exit code 0)"));
}

// A sealed trace opened without its key (or with another): its header is still readable.
int info_of_sealed(const std::string& given_path, const std::string& why) {
    const std::string path = trace::Reader::trace_name(given_path);
    std::string header_why;
    auto h = trace::Reader::read_header(path, &header_why);
    if (!h.ok()) {
        fmt::print(stderr, "reprise info: {}\n", why);
        return exit_usage;
    }
    fmt::print("trace            {}\n", path);
    fmt::print("format           version {}, sealed\n", trace::format_version);
    print_identity(*h);
    fmt::print("records          sealed: {}\n", why.substr(why.find(": ") + 2));
    print_retention(path);
    return exit_ok;
}

int cmd_info(const Args& args) {
    if (args.operands.size() != 1)
        return usage_error("info", "expects exactly one trace");
    {
        std::string why;
        if (auto r = trace::Reader::open(args.operands[0], &why, key()); !r.ok() && key_problem(why))
            return info_of_sealed(args.operands[0], why);
    }
    int code = exit_ok;
    auto c = open_trace(args.operands[0], "info", code);
    if (!c)
        return code;

    std::map<trace::RecordKind, std::uint64_t> by_kind;
    std::map<trace::RecordKind, std::map<std::string, std::uint64_t>> by_sub;
    std::uint64_t data_bytes = 0, written_bytes = 0;
    std::optional<std::int64_t> last_tick_mono_ns;
    std::int64_t exit_code = 0;
    while (c->next()) {
        const trace::Record& r = c->record;
        const trace::RecordKind kind = trace::kind_of(r);
        ++by_kind[kind];
        if (const char* sub = sub_kind_name(r))
            ++by_sub[kind][sub];
        if (const auto* w = std::get_if<trace::Wake>(&r))
            data_bytes += w->data.size();
        else if (const auto* i = std::get_if<trace::Input>(&r))
            data_bytes += i->value.size();
        else if (const auto* o = std::get_if<trace::Output>(&r)) {
            data_bytes += o->bytes.size();
            if (o->output == trace::OutputKind::conn_write)
                written_bytes += o->length;
        } else if (const auto* t = std::get_if<trace::Tick>(&r))
            last_tick_mono_ns = t->mono_ns;
        else if (const auto* e = std::get_if<trace::End>(&r))
            exit_code = e->exit_code;
    }
    const bool clean = c->reader.saw_end() && c->reader.check_nothing_after_end();

    const trace::Header& h = c->reader.header();
    std::error_code ec;
    const bool single_file = c->reader.segments() == 1 && std::filesystem::is_regular_file(c->name, ec);
    std::string segments = single_file                  ? std::string("1 (a single file)")
                           : c->reader.segments() == 1 ? fmt::format("1 ({}.0)", c->name)
                               : fmt::format("{} ({}.0 to {}.{})", c->reader.segments(), c->name, c->name,
                                             c->reader.segments() - 1);

    fmt::print("trace            {}\n", c->name);
    const trace::Reader& rd = c->reader;
    fmt::print("format           version {}, {} bytes in {} chunks\n", trace::format_version, file_bytes(*c),
               rd.chunks_read());
    fmt::print("stored           {} bytes of chunks holding {} bytes of records{}\n", rd.chunk_stored_bytes(),
               rd.chunk_payload_bytes(),
               rd.chunk_stored_bytes() == 0 ? std::string()
               // Frames (and seals) make an uncompressed trace's stored bytes a little more than its records.
               : rd.chunks_compressed() == 0
                   ? std::string(" (not compressed)")
                   : fmt::format(" (compression {:.2f}x)", static_cast<double>(rd.chunk_payload_bytes()) /
                                                               static_cast<double>(rd.chunk_stored_bytes())));
    fmt::print("chunks           {} compressed, {} encrypted{}\n", rd.chunks_compressed(), rd.chunks_encrypted(),
               h.encrypted ? " (the trace is encrypted)" : "");
    fmt::print("segments         {}\n", segments);
    print_identity(h);
    fmt::print("records          {}\n", c->count);
    for (int k = 1; k <= trace::record_kind_last; ++k) {
        auto kind = static_cast<trace::RecordKind>(k);
        std::string subs;
        for (const auto& [name, n] : by_sub[kind])
            subs += fmt::format("{}{} {}", subs.empty() ? "" : ", ", name, n);
        fmt::print("  {:<14} {:>8}{}\n", trace::record_kind_name(kind), by_kind[kind],
                   subs.empty() ? std::string() : fmt::format("   ({})", subs));
    }
    fmt::print("ticks            {}\n", by_kind[trace::RecordKind::tick]);
    if (c->first_tick_mono_ns)
        fmt::print("virtual time     {} s from the first tick to the last ({} s to {} s after the start)\n",
                   seconds(*last_tick_mono_ns - *c->first_tick_mono_ns), seconds(*c->first_tick_mono_ns - h.start_mono_ns),
                   seconds(*last_tick_mono_ns - h.start_mono_ns));
    else
        fmt::print("virtual time     (no tick)\n");
    fmt::print("payload bytes    {} (bytes read, input values, offload results, full outputs)\n", data_bytes);
    fmt::print("bytes written    {} (by the program to its connections)\n", written_bytes);
    if (clean) {
        if (exit_code == trace::exit_code_still_running)
            fmt::print("state            closed cleanly: end record, the program still ran when the recording stopped "
                       "(a simulation's time was over); replay stops before that record\n");
        else
            fmt::print("state            closed cleanly: end record, exit code {}\n", exit_code);
    } else if (c->reader.error()) {
        fmt::print("state            truncated or damaged: {}\n", c->damage());
        fmt::print("last good event  {}\n", c->last_good_event());
    } else {
        fmt::print("state            incomplete: no end record: {}\n", trace::describe_cut(c->name));
        fmt::print("last good event  {}\n", c->last_good_event());
    }
    print_retention(c->name, clean ? std::optional<std::int64_t>(exit_code) : std::nullopt);
    return exit_ok;
}

// --- dump -------------------------------------------------------------------------------------

/// Default of --bytes: as much as a terminal line holds beside the record's fields.
constexpr std::uint64_t dump_bytes_default = 64;

/// What `dump` selects and how it prints it.
struct DumpOptions {
    std::uint64_t from = 0;
    std::uint64_t to = UINT64_MAX;
    std::set<std::string> kinds;           ///< empty: every kind
    std::set<std::uint64_t> handles;       ///< empty: every event
    std::optional<std::string> node;       ///< only traces of this node
    std::uint64_t bytes_max = dump_bytes_default;  ///< of each payload in text (UINT64_MAX: all)
    bool json = false;
    bool several = false;                  ///< several traces: each line names its node
};

// The symbolic name of an errno value ("ECONNREFUSED"), or nothing when the C library
// has none (then the number is printed alone).
std::optional<std::string> errno_name(std::int64_t e) {
    if (e <= 0 || e > INT_MAX)
        return std::nullopt;
    const char* name = strerrorname_np(static_cast<int>(e));
    return name ? std::optional<std::string>(name) : std::nullopt;
}

// An errno for a text line: its name, or its number when it has none.
std::string errno_text(std::int64_t e) { return errno_name(e).value_or(std::to_string(e)); }

// A payload for a text line, quoted and escaped: at most `bytes_max` bytes of it, and where
// it is cut, how many bytes were left out and how to see them. Counts the cut in `cuts`.
std::string payload(std::string_view bytes, std::size_t bytes_max, std::uint64_t& cuts) {
    if (bytes.size() <= bytes_max)
        return fmt::format("\"{}\"", escaped(bytes));
    ++cuts;
    return fmt::format("\"{}\"[{} more bytes not shown: --full or --bytes {} shows them]",
                       escaped(bytes.substr(0, bytes_max)), bytes.size() - bytes_max, bytes.size());
}

// A listen or connect input's recorded outcome, decoded: "ok", "ok bound=ADDR" or "error
// CODE (ERRNO)"; nothing when the value does not decode (then its bytes are shown).
std::optional<std::string> connect_outcome(const trace::Input& in) {
    auto error_text = [](const reprise::Error& e) {
        return e.sys_errno == 0 ? fmt::format("error {}", reprise::errc_name(e.code))
                                : fmt::format("error {} ({})", reprise::errc_name(e.code), errno_text(e.sys_errno));
    };
    if (in.input == trace::InputKind::listen) {
        auto v = reprise::decode_value<std::pair<reprise::Result<void>, std::string>>(in.value);
        if (!v)
            return std::nullopt;
        return v->first.ok() ? fmt::format("ok bound={}", shown(v->second)) : error_text(v->first.error());
    }
    if (in.input == trace::InputKind::connect) {
        auto v = reprise::decode_value<reprise::Result<void>>(in.value);
        if (!v)
            return std::nullopt;
        return v->ok() ? std::string("ok") : error_text(v->error());
    }
    return std::nullopt;
}

// One record as a dump line: trace::describe()'s fields, with errno values named and no
// payload shortened without saying so.
std::string dump_text(const trace::Record& record, std::size_t bytes_max, std::uint64_t& cuts) {
    using reprise::WakeKind;
    if (const auto* w = std::get_if<trace::Wake>(&record)) {
        std::string s = fmt::format("wake {} handle={} value={}", reprise::wake_kind_name(w->wake), w->handle,
                                    w->wake == WakeKind::io_error ? errno_text(w->value) : std::to_string(w->value));
        if (w->wake == WakeKind::bytes_read && w->value > 0) {
            // A read holding a secret: its bytes with the secret masked, then the trailer saying where (not shown).
            const std::string_view read = w->data.substr(0, w->data.size() - static_cast<std::size_t>(w->value));
            s += fmt::format(" bytes={} {} (redacted: {} spans)", read.size(), payload(read, bytes_max, cuts),
                             static_cast<std::size_t>(w->value) / trace::redaction_bytes);
        } else if (!w->data.empty()) {
            s += fmt::format(" bytes={} {}", w->data.size(), payload(w->data, bytes_max, cuts));
        }
        return s;
    }
    if (const auto* i = std::get_if<trace::Input>(&record)) {
        std::string s = fmt::format("input {} name={}", reprise::input_kind_name(i->input), payload(i->name, bytes_max, cuts));
        if (auto outcome = connect_outcome(*i))
            return s + fmt::format(" result={}", *outcome);
        return s + fmt::format(" bytes={} {}", i->value.size(), payload(i->value, bytes_max, cuts));
    }
    if (const auto* o = std::get_if<trace::Output>(&record)) {
        std::string s = fmt::format("output {} handle={} length={} digest={:016x}", reprise::output_kind_name(o->output),
                                    o->handle, o->length, o->digest);
        if (!o->bytes.empty())
            s += fmt::format(" {}", payload(o->bytes, bytes_max, cuts));
        return s;
    }
    if (const auto* sp = std::get_if<trace::Spawn>(&record))
        return fmt::format("spawn task={} name={}", sp->task, payload(sp->name, bytes_max, cuts));
    if (const auto* c = std::get_if<trace::Connected>(&record); c && c->error != 0)
        return fmt::format("connected connection={} error={}", c->connection, errno_text(c->error));
    if (const auto* a = std::get_if<trace::Annotation>(&record)) {
        std::string s = fmt::format("annotation {}", payload(a->name, bytes_max, cuts));
        for (std::size_t k = 0; k < a->count; ++k) {
            const trace::AnnotationField& f = a->fields[k];
            s += f.is_text ? fmt::format(" {}={}", escaped(f.key), payload(f.text, bytes_max, cuts))
                           : fmt::format(" {}={}", escaped(f.key), f.number);
        }
        return s;
    }
    return trace::describe(record);  // tick, end, accepted, a connect that succeeded: no payload, no errno
}

// A failed listen's or connect's outcome as JSON members: the runtime's code, the errno and its name.
void error_members(const reprise::Error& e, reprise::JsonWriter& j) {
    j.member("errc", reprise::errc_name(e.code)).member("errno", e.sys_errno);
    if (auto name = errno_name(e.sys_errno))
        j.member("errno_name", *name);
}

// The JSON members dump adds to trace::to_json(): errno names beside their numbers, and
// the decoded outcome of listen and connect inputs.
void dump_json_extras(const trace::Record& record, reprise::JsonWriter& j) {
    if (const auto* w = std::get_if<trace::Wake>(&record); w && w->wake == reprise::WakeKind::io_error) {
        if (auto name = errno_name(w->value))
            j.member("errno_name", *name);
    } else if (const auto* c = std::get_if<trace::Connected>(&record); c && c->error != 0) {
        if (auto name = errno_name(c->error))
            j.member("error_name", *name);
    } else if (const auto* i = std::get_if<trace::Input>(&record)) {
        if (i->input == trace::InputKind::listen) {
            if (auto v = reprise::decode_value<std::pair<reprise::Result<void>, std::string>>(i->value)) {
                j.key("result").begin_object().member("ok", v->first.ok());
                if (v->first.ok())
                    j.member("bound", v->second);
                else
                    error_members(v->first.error(), j);
                j.end_object();
            }
        } else if (i->input == trace::InputKind::connect) {
            if (auto v = reprise::decode_value<reprise::Result<void>>(i->value)) {
                j.key("result").begin_object().member("ok", v->ok());
                if (!v->ok())
                    error_members(v->error(), j);
                j.end_object();
            }
        }
    }
}

// Whether a record is about one of `handles` (see --handle in the help).
bool names_handle(const trace::Record& record, const std::set<std::uint64_t>& handles) {
    auto has = [&](std::uint64_t h) { return handles.count(h) != 0; };
    if (const auto* w = std::get_if<trace::Wake>(&record))
        return has(w->handle);
    if (const auto* o = std::get_if<trace::Output>(&record))
        return o->output == trace::OutputKind::conn_write && has(o->handle);
    if (const auto* a = std::get_if<trace::Accepted>(&record))
        return has(a->listener) || has(a->connection);
    if (const auto* c = std::get_if<trace::Connected>(&record))
        return has(c->connection);
    if (const auto* s = std::get_if<trace::Spawn>(&record))
        return has(s->task);
    if (const auto* i = std::get_if<trace::Input>(&record); i && i->input == trace::InputKind::output_left) {
        auto id = parse_index(i->name);
        return id && has(*id);
    }
    return false;
}

// The items of a repeatable, comma-separated option, in order.
std::vector<std::string> list_items(const Args& args, const std::string& option) {
    std::vector<std::string> items;
    if (!args.has(option))
        return items;
    for (const std::string& list : args.options.at(option)) {
        std::size_t start = 0;
        for (;;) {
            const std::size_t comma = list.find(',', start);
            items.push_back(list.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
            if (comma == std::string::npos)
                break;
            start = comma + 1;
        }
    }
    return items;
}

// Reads dump's options; a message on a bad one.
std::optional<std::string> parse_dump_options(const Args& args, DumpOptions& o) {
    const std::pair<const char*, std::uint64_t*> numbers[] = {{"--from", &o.from}, {"--to", &o.to}, {"--bytes", &o.bytes_max}};
    for (const auto& [flag, value] : numbers) {
        if (!args.has(flag))
            continue;
        auto v = parse_index(args.options.at(flag).back());
        if (!v)
            return fmt::format("{} needs {}, not {}", flag, value == &o.bytes_max ? "a number of bytes" : "an event index",
                               shown(args.options.at(flag).back()));
        *value = *v;
    }
    if (o.from > o.to)
        return fmt::format("--from {} is past --to {}", o.from, o.to);
    if (args.has("--full") && args.has("--bytes"))
        return std::string("--full prints every byte and --bytes N at most N: give one of them");
    if (args.has("--full"))
        o.bytes_max = UINT64_MAX;
    const std::vector<std::string> known = kind_names();
    for (const std::string& k : list_items(args, "--kind")) {
        if (std::find(known.begin(), known.end(), k) == known.end()) {
            std::string all;
            for (const std::string& n : known)
                all += (all.empty() ? "" : ", ") + n;
            return fmt::format("unknown kind {}; known kinds: {}", shown(k), all);
        }
        o.kinds.insert(k);
    }
    for (const std::string& h : list_items(args, "--handle")) {
        auto id = parse_index(h);
        if (!id || *id == 0)
            return fmt::format("--handle needs handle ids (numbers from 1, as dump prints them), not {}", shown(h));
        o.handles.insert(*id);
    }
    if (args.has("--node")) {
        o.node = args.options.at("--node").back();
        if (o.node->empty())
            return std::string("--node needs a node name");
    }
    o.json = args.has("--json");
    o.several = args.operands.size() > 1;
    return std::nullopt;
}

// Whether dump prints a record under `o`'s --kind and --handle.
bool selected(const trace::Record& r, const DumpOptions& o) {
    if (!o.kinds.empty()) {
        const char* sub = sub_kind_name(r);
        if (!o.kinds.count(trace::record_kind_name(trace::kind_of(r))) && !(sub && o.kinds.count(sub)))
            return false;
    }
    return o.handles.empty() || names_handle(r, o.handles);
}

// Dumps one trace; its exit code. `cuts` counts the payloads shortened.
int dump_trace(const std::string& path, const DumpOptions& o, std::uint64_t& cuts) {
    int code = exit_ok;
    auto c = open_trace(path, "dump", code);
    if (!c)
        return code;
    const std::string& node = c->reader.header().node;
    if (o.node && node != *o.node) {
        fmt::print(stderr, "reprise dump: {} is node {}, not {}: nothing printed from it\n", path, shown(node),
                   shown(*o.node));
        return exit_ok;
    }
    const std::string prefix = o.several ? fmt::format("{} ", shown(node)) : std::string();
    reprise::JsonWriter line;
    while (c->count <= o.to && c->next()) {
        if (c->index < o.from || !selected(c->record, o))
            continue;
        const trace::Record& r = c->record;
        if (o.json) {
            line.clear();
            line.begin_object();
            if (o.several)
                line.member("node", node);
            line.member("index", c->index).member("vt_ns", c->vt_ns());
            trace::to_json(r, line);
            dump_json_extras(r, line);
            line.end_object();
            fmt::print("{}\n", line.str());
        } else {
            fmt::print("{}#{:<7} {:>15}  {}\n", prefix, c->index, seconds(c->vt_ns()), dump_text(r, o.bytes_max, cuts));
        }
    }
    std::fflush(stdout);
    if (c->reader.error()) {
        fmt::print(stderr, "reprise dump: {}the trace stops early: {}\n  last good event: {}\n",
                   o.several ? fmt::format("{}: ", path) : std::string(), c->damage(), c->last_good_event());
        return exit_failed;
    }
    if (c->count <= o.to && !c->reader.saw_end())
        fmt::print(stderr, "reprise dump: note: {} has no end record (the recording was cut off); last event: {}\n",
                   path, c->last_good_event());
    if (o.from >= c->count)
        fmt::print(stderr, "reprise dump: note: {} has no event #{}: it holds {} event(s)\n", path, o.from, c->count);
    return exit_ok;
}

int cmd_dump(const Args& args) {
    if (args.operands.empty())
        return usage_error("dump", "expects one or more traces");
    DumpOptions o;
    if (auto why = parse_dump_options(args, o))
        return usage_error("dump", *why);
    int code = exit_ok;
    std::uint64_t cuts = 0;
    for (const std::string& path : args.operands)
        code = std::max(code, dump_trace(path, o, cuts));
    if (cuts > 0)
        fmt::print(stderr,
                   "reprise dump: note: {} payload(s) shortened to their first {} bytes, each marked where it is cut; "
                   "--full prints every byte\n",
                   cuts, o.bytes_max);
    return code;
}

// --- verify -----------------------------------------------------------------------------------

int cmd_verify(const Args& args) {
    if (args.operands.size() != 1)
        return usage_error("verify", "expects exactly one trace");
    const std::string& path = args.operands[0];
    std::string why;
    auto r = trace::Reader::open(path, &why, key());
    if (!r.ok()) {
        std::error_code ec;
        if (r.code() == reprise::Errc::not_found || key_problem(why) || std::filesystem::is_directory(path, ec)) {
            fmt::print(stderr, "reprise verify: {}\n", why);
            return exit_usage;
        }
        // Any other file that does not open as a trace (not one at all, or its header damaged)
        // is not an intact trace: the yes/no answer verify gives is no.
        fmt::print("FAILED {}\n", why);
        return exit_failed;
    }
    Cursor c(path, std::move(*r));
    std::int64_t exit_code = 0;
    while (c.next())
        if (const auto* e = std::get_if<trace::End>(&c.record))
            exit_code = e->exit_code;
    if (c.reader.saw_end())
        c.reader.check_nothing_after_end();
    if (c.reader.error()) {
        fmt::print("FAILED {}: damaged: {}\n  last good event: {}\n", path, c.damage(), c.last_good_event());
        return exit_failed;
    }
    if (!c.reader.saw_end()) {
        // Stopped at its budget on purpose (the outcome file says so): intact, and it ends there.
        const auto outcome = trace::being_written(path) ? std::nullopt : trace::read_outcome(path);
        if (outcome && outcome->recording == trace::Outcome::Recording::budget) {
            fmt::print("OK {}: {} events in {} chunks ({} file{}), intact; {}: no end record\n", path, c.count,
                       c.reader.chunks_read(), c.reader.segments(), c.reader.segments() == 1 ? "" : "s",
                       trace::describe_cut(path));
            return exit_ok;
        }
        fmt::print("FAILED {}: incomplete: no end record after {} event(s); the trace stops at byte offset {} of {} "
                   "({})\n  last good event: {}\n",
                   path, c.count, c.reader.end_offset(), c.reader.path(), trace::describe_cut(path), c.last_good_event());
        return exit_failed;
    }
    const std::int64_t span_ns = c.first_tick_mono_ns ? c.tick_mono_ns - *c.first_tick_mono_ns : 0;
    fmt::print("OK {}: {} events in {} chunks ({} file{}), virtual time {} s, ended with exit code {}\n", path, c.count,
               c.reader.chunks_read(), c.reader.segments(), c.reader.segments() == 1 ? "" : "s", seconds(span_ns),
               exit_code);
    return exit_ok;
}

// --- diff ---------------------------------------------------------------------------------------

// Where the first bytes of two strings differ.
std::size_t first_mismatch(std::string_view a, std::string_view b) {
    std::size_t i = 0;
    while (i < a.size() && i < b.size() && a[i] == b[i])
        ++i;
    return i;
}

// What differs between two records of one kind (not ticks), or nothing.
std::optional<std::string> field_difference(const trace::Record& x, const trace::Record& y) {
    using std::get;
    auto bytes = [](const char* what, std::string_view p, std::string_view q) -> std::optional<std::string> {
        if (p == q)
            return std::nullopt;
        return fmt::format("{}: {} vs {} bytes, first different byte at {}", what, p.size(), q.size(),
                           first_mismatch(p, q));
    };
    auto number = [](const char* what, auto p, auto q) -> std::optional<std::string> {
        if (p == q)
            return std::nullopt;
        return fmt::format("{}: {} vs {}", what, p, q);
    };
    auto addresses = [](const reprise::Address& p1, const reprise::Address& l1, const reprise::Address& p2,
                        const reprise::Address& l2) -> std::optional<std::string> {
        if (p1 == p2 && l1 == l2)
            return std::nullopt;
        return fmt::format("addresses: peer {} local {} vs peer {} local {}", p1.to_string(), l1.to_string(),
                           p2.to_string(), l2.to_string());
    };
    std::optional<std::string> d;
    switch (trace::kind_of(x)) {
    case trace::RecordKind::tick: break;
    case trace::RecordKind::wake: {
        const auto &p = get<trace::Wake>(x), &q = get<trace::Wake>(y);
        if (p.wake != q.wake)
            return fmt::format("kind: {} vs {}", reprise::wake_kind_name(p.wake), reprise::wake_kind_name(q.wake));
        (d = number("handle", p.handle, q.handle)) || (d = number("value", p.value, q.value)) ||
            (d = bytes("data", p.data, q.data));
        break;
    }
    case trace::RecordKind::input: {
        const auto &p = get<trace::Input>(x), &q = get<trace::Input>(y);
        if (p.input != q.input)
            return fmt::format("kind: {} vs {}", reprise::input_kind_name(p.input), reprise::input_kind_name(q.input));
        if (p.name != q.name)
            return fmt::format("name: {} vs {}", shown(p.name), shown(q.name));
        d = bytes("value", p.value, q.value);
        break;
    }
    case trace::RecordKind::output: {
        const auto &p = get<trace::Output>(x), &q = get<trace::Output>(y);
        if (p.output != q.output)
            return fmt::format("kind: {} vs {}", reprise::output_kind_name(p.output), reprise::output_kind_name(q.output));
        (d = number("handle", p.handle, q.handle)) || (d = number("length", p.length, q.length));
        if (!d && p.digest != q.digest)
            d = fmt::format("digest: {:016x} vs {:016x}", p.digest, q.digest);
        if (!d && !p.bytes.empty() && !q.bytes.empty())
            d = bytes("bytes", p.bytes, q.bytes);
        break;
    }
    case trace::RecordKind::spawn: {
        const auto &p = get<trace::Spawn>(x), &q = get<trace::Spawn>(y);
        if (!(d = number("task id", p.task, q.task)) && p.name != q.name)
            d = fmt::format("name: {} vs {}", shown(p.name), shown(q.name));
        break;
    }
    case trace::RecordKind::end: d = number("exit code", get<trace::End>(x).exit_code, get<trace::End>(y).exit_code); break;
    case trace::RecordKind::accepted: {
        const auto &p = get<trace::Accepted>(x), &q = get<trace::Accepted>(y);
        (d = number("listener", p.listener, q.listener)) || (d = number("connection", p.connection, q.connection)) ||
            (d = addresses(p.peer, p.local, q.peer, q.local));
        break;
    }
    case trace::RecordKind::connected: {
        const auto &p = get<trace::Connected>(x), &q = get<trace::Connected>(y);
        (d = number("connection", p.connection, q.connection)) || (d = number("error", p.error, q.error)) ||
            (d = addresses(p.peer, p.local, q.peer, q.local));
        break;
    }
    case trace::RecordKind::annotation:
        if (!(get<trace::Annotation>(x) == get<trace::Annotation>(y)))
            d = fmt::format("annotation: {} vs {}", trace::describe(x), trace::describe(y));
        break;
    }
    return d;
}

// What differs between the current records of two traces, or nothing.
std::optional<std::string> difference(const Cursor& a, const Cursor& b) {
    const trace::Record& x = a.record;
    const trace::Record& y = b.record;
    if (trace::kind_of(x) != trace::kind_of(y))
        return fmt::format("record kind: {} vs {}", trace::record_kind_name(trace::kind_of(x)),
                           trace::record_kind_name(trace::kind_of(y)));
    if (const auto* tx = std::get_if<trace::Tick>(&x)) {
        const auto& ty = std::get<trace::Tick>(y);
        const std::int64_t xm = tx->mono_ns - *a.first_tick_mono_ns, ym = ty.mono_ns - *b.first_tick_mono_ns;
        if (xm != ym)
            return fmt::format("time since the first tick: {} s vs {} s", seconds(xm), seconds(ym));
        const std::int64_t xw = tx->wall_ns - *a.first_tick_wall_ns, yw = ty.wall_ns - *b.first_tick_wall_ns;
        if (xw != yw)
            return fmt::format("wall-clock time since the first tick: {} s vs {} s", seconds(xw), seconds(yw));
        return std::nullopt;
    }
    return field_difference(x, y);
}

// How a trace that has no event at the current index ended.
std::string ran_out(const Cursor& c) {
    if (c.reader.error())
        return fmt::format("(no event: the trace is damaged: {})", c.damage());
    if (c.reader.saw_end())
        return "(no event: the trace ended with its end record)";
    return "(no event: the trace stops here without an end record)";
}

void header_notes(const Cursor& a, const Cursor& b) {
    const trace::Header& x = a.reader.header();
    const trace::Header& y = b.reader.header();
    auto note = [](const char* field, const std::string& xa, const std::string& yb) {
        if (xa != yb)
            fmt::print("note: the headers differ in {}: A {}, B {}\n", field, xa, yb);
    };
    auto joined = [](const std::vector<std::string>& v) {
        std::string s;
        for (const std::string& a : v)
            s += (s.empty() ? "" : " ") + shown(a);
        return "[" + s + "]";
    };
    note("node", shown(x.node), shown(y.node));
    note("argv", joined(x.argv), joined(y.argv));
    note("seed", std::to_string(x.seed), std::to_string(y.seed));
    note("build id", shown(x.build_id), shown(y.build_id));
    note("runtime version", shown(x.runtime_version), shown(y.runtime_version));
}

int cmd_diff(const Args& args) {
    if (args.operands.size() != 2)
        return usage_error("diff", "expects two traces");
    int code = exit_ok;
    auto a = open_trace(args.operands[0], "diff", code);
    if (!a)
        return code;
    auto b = open_trace(args.operands[1], "diff", code);
    if (!b)
        return code;
    header_notes(*a, *b);
    auto side = [](const char* label, const Cursor& c) {
        return fmt::format("  {} #{} vt={} s  {}", label, c.index, seconds(c.vt_ns()), trace::describe(c.record));
    };
    for (;;) {
        const bool ha = a->next();
        const bool hb = b->next();
        if (!ha && !hb)
            break;
        if (ha && hb) {
            if (auto what = difference(*a, *b)) {
                fmt::print("the traces differ at event #{}: {}\n{}\n{}\n  last common event: {}\n", a->index, *what,
                           side("A", *a), side("B", *b),
                           a->index == 0 ? "(none)" : fmt::format("#{} {}", a->index - 1, a->before_last_good));
                return exit_failed;
            }
            continue;
        }
        const std::uint64_t at = ha ? a->index : b->index;
        const Cursor& longer = ha ? *a : *b;
        fmt::print("the traces differ at event #{}: one trace has no event there\n{}\n{}\n  last common event: {}\n", at,
                   ha ? side("A", *a) : fmt::format("  A {}", ran_out(*a)),
                   hb ? side("B", *b) : fmt::format("  B {}", ran_out(*b)),
                   at == 0 ? "(none)" : fmt::format("#{} {}", at - 1, longer.before_last_good));
        return exit_failed;
    }
    // Both ran out at the same index: identical, unless damage hides what follows.
    for (const Cursor* c : {&*a, &*b}) {
        if (c->reader.error()) {
            fmt::print(stderr,
                       "reprise diff: the traces agree on their first {} event(s), but {} is damaged there and cannot "
                       "be compared further: {}\n",
                       c->count, c->name, c->damage());
            return exit_usage;
        }
    }
    // Equal records up to here means both have an end record or neither has.
    const char* ending = a->reader.saw_end() ? "both end with their end record" : "both stop without an end record";
    fmt::print("identical: {} events ({})\n", a->count, ending);
    return exit_ok;
}

// --- keygen -------------------------------------------------------------------------------------

int cmd_keygen(const Args& args) {
    if (args.operands.size() != 1)
        return usage_error("keygen", "expects exactly one file to create");
    std::string why;
    if (!trace::write_new_trace_key(args.operands[0], why).ok()) {
        fmt::print(stderr, "reprise keygen: {}\n", why);
        return exit_usage;
    }
    fmt::print("wrote a new trace key to {} (mode 0600): record with --record-key={}; keep it as safe as the "
               "traces it opens\n",
               args.operands[0], args.operands[0]);
    return exit_ok;
}

// --- cluster --------------------------------------------------------------------------------------

// A size: bytes, or with a K, M, G (KiB...) suffix.
std::optional<std::uint64_t> parse_size(const std::string& text) {
    CLI::App app;
    std::uint64_t v = 0;
    app.add_option("--size", v)->transform(CLI::AsSizeValue(false))->required();
    try {
        app.parse(std::vector<std::string>{text, "--size"});  // CLI11 takes the arguments last first
    } catch (const CLI::ParseError&) {
        return std::nullopt;
    }
    return v;
}

// Seconds (a decimal) as nanoseconds.
std::optional<std::int64_t> parse_seconds(const std::string& text) {
    double v = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc{} || end != text.data() + text.size() || text.empty() || !(v > -1e9 && v < 1e9))
        return std::nullopt;
    return static_cast<std::int64_t>(v * 1e9);
}

int cmd_cluster(const Args& args) {
    reprise::tool::ClusterRequest rq;
    if (args.operands.empty())
        return usage_error("cluster", "expects an action (check, log or timeline), then traces or folders");
    rq.action = args.operands[0];
    if (rq.action != "check" && rq.action != "log" && rq.action != "timeline")
        return usage_error("cluster", fmt::format("unknown action {}: check, log or timeline", shown(rq.action)));
    rq.inputs.assign(args.operands.begin() + 1, args.operands.end());
    if (rq.inputs.empty())
        return usage_error("cluster", "expects traces, or folders of traces, after the action");
    if (args.has("--map")) {
        for (const std::string& m : args.options.at("--map")) {
            const auto eq = m.find('=');
            if (eq == std::string::npos || eq == 0 || eq + 1 == m.size())
                return usage_error("cluster", fmt::format("--map needs FROM=TO (HOST:PORT or HOST), not {}", shown(m)));
            rq.maps.emplace_back(m.substr(0, eq), m.substr(eq + 1));
        }
    }
    for (const char* name : {"--from", "--to"}) {
        if (!args.has(name))
            continue;
        auto v = parse_seconds(args.options.at(name).back());
        if (!v)
            return usage_error("cluster", fmt::format("{} needs seconds of cluster time, not {}", name,
                                                      shown(args.options.at(name).back())));
        (std::string_view(name) == "--from" ? rq.from_ns : rq.to_ns) = *v;
    }
    if (rq.from_ns && rq.to_ns && *rq.from_ns > *rq.to_ns)
        return usage_error("cluster", "--from is past --to");
    if (args.has("--nodes")) {
        for (const std::string& list : args.options.at("--nodes")) {
            std::size_t start = 0;
            for (;;) {
                const std::size_t comma = list.find(',', start);
                std::string n = list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
                n.erase(0, n.find_first_not_of(' '));
                n.erase(n.find_last_not_of(' ') + 1);
                if (!n.empty())
                    rq.nodes.push_back(n);
                if (comma == std::string::npos)
                    break;
                start = comma + 1;
            }
        }
    }
    if (args.has("--max-bytes")) {
        auto v = parse_size(args.options.at("--max-bytes").back());
        if (!v || *v == 0)
            return usage_error("cluster", fmt::format("--max-bytes needs a size (bytes, or with K, M, G), not {}",
                                                      shown(args.options.at("--max-bytes").back())));
        rq.max_bytes = *v;
    }
    if (args.has("--output"))
        rq.output = args.options.at("--output").back();
    rq.json = args.has("--json");
    rq.ticks = args.has("--ticks");
    rq.connections = args.has("--connections");
    rq.html = args.has("--html");
    const bool timeline = rq.action == "timeline";
    if (!timeline && (rq.html || args.has("--output") || args.has("--max-bytes")))
        return usage_error("cluster", "--html, --output and --max-bytes are options of timeline");
    if (rq.action != "log" && (rq.json || rq.ticks))
        return usage_error("cluster", "--json and --ticks are options of log");
    if (rq.action == "check" && (rq.from_ns || rq.to_ns || !rq.nodes.empty()))
        return usage_error("cluster", "check reads every event of every trace: --from, --to and --nodes are for log and timeline");
    if (rq.action != "check" && rq.connections)
        return usage_error("cluster", "--connections is an option of check");
    rq.key = key();
    return reprise::tool::cluster_main(rq);
}

// --- load ---------------------------------------------------------------------------------------

int cmd_load(const Args& args) {
    reprise::tool::LoadRequest rq;
    if (args.operands.size() != 1)
        return usage_error("load", "expects one trace");
    rq.trace = args.operands[0];
    const std::string to = args.has("--to") ? args.options.at("--to").back() : std::string();
    const auto colon = to.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == to.size() || !parse_index(to.substr(colon + 1)))
        return usage_error("load", fmt::format("--to needs the target's HOST:PORT, not {}", shown(to)));
    rq.host = to.substr(0, colon);
    if (rq.host.size() > 2 && rq.host.front() == '[' && rq.host.back() == ']')
        rq.host = rq.host.substr(1, rq.host.size() - 2);
    rq.port = to.substr(colon + 1);
    if (args.has("--speed")) {
        const std::string& v = args.options.at("--speed").back();
        double n = 0;
        auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
        if (v == "max")
            rq.speed = 0;
        else if (ec != std::errc{} || end != v.data() + v.size() || !(n > 0 && n < 1e9))
            return usage_error("load", fmt::format("--speed needs 1, a factor N > 0 or max, not {}", shown(v)));
        else
            rq.speed = n;
    }
    if (args.has("--timeout")) {
        auto ns = parse_seconds(args.options.at("--timeout").back());
        if (!ns || *ns <= 0)
            return usage_error("load", fmt::format("--timeout needs seconds, not {}", shown(args.options.at("--timeout").back())));
        rq.timeout_ns = *ns;
    }
    if (args.has("--ignore"))
        for (const std::string& list : args.options.at("--ignore"))
            for (std::size_t start = 0; start <= list.size();) {
                const std::size_t comma = std::min(list.find(',', start), list.size());
                std::string name = list.substr(start, comma - start);
                std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
                if (!name.empty())
                    rq.ignore.push_back(name);
                start = comma + 1;
            }
    rq.json = args.has("--json");
    rq.key = key();
    return reprise::tool::load_main(rq);
}

// --- debug --------------------------------------------------------------------------------------

int cmd_debug(const Args& args) {
    reprise::tool::DebugRequest rq;
    rq.inputs = args.operands;
    if (rq.inputs.empty())
        return usage_error("debug", "expects a trace, several traces or a folder of traces");
    auto last = [&](const char* name) -> std::optional<std::string> {
        return args.has(name) ? std::optional<std::string>(args.options.at(name).back()) : std::nullopt;
    };
    rq.program = last("--program");
    rq.extension = last("--extension");
    rq.break_at = last("--break-at");
    rq.key_path = last("--record-key");
    if (auto g = last("--gdb"))
        rq.gdb = *g;
    rq.print_command = args.has("--print-command");
    rq.gdb_args = args.rest;
    rq.key = key();
    return reprise::tool::debug_main(rq);
}

// --- main ---------------------------------------------------------------------------------------

struct Command {
    const char* name;
    const char* help;
    int (*run)(const Args&);
    std::set<std::string> flags;
    std::set<std::string> valued;
    bool passes_rest = false;  ///< what follows `--` is passed on (Args::rest), not operands
};

const std::vector<Command>& commands() {
    static const std::vector<Command> list = {
        {"info", info_help, cmd_info, {}, {"--record-key"}},
        {"dump", dump_help, cmd_dump, {"--json", "--full"}, {"--from", "--to", "--kind", "--handle", "--node", "--bytes", "--record-key"}},
        {"verify", verify_help, cmd_verify, {}, {"--record-key"}},
        {"diff", diff_help, cmd_diff, {}, {"--record-key"}},
        {"keygen", keygen_help, cmd_keygen, {}, {}},
        {"cluster", reprise::tool::cluster_help, cmd_cluster, {"--json", "--ticks", "--connections", "--html"},
         {"--map", "--from", "--to", "--nodes", "--output", "--max-bytes", "--record-key"}},
        {"load", reprise::tool::load_help, cmd_load, {"--json"}, {"--to", "--speed", "--ignore", "--timeout", "--record-key"}},
        {"debug", reprise::tool::debug_help, cmd_debug, {"--print-command"},
         {"--program", "--extension", "--gdb", "--break-at", "--record-key"}, true},
    };
    return list;
}

const Command* find_command(std::string_view name) {
    for (const Command& c : commands())
        if (name == c.name)
            return &c;
    return nullptr;
}

int run(int argc, char** argv) {
    if (argc < 2) {
        fmt::print(stderr, "{}", main_help);
        return exit_usage;
    }
    std::string_view first = argv[1];
    if (first == "-h" || first == "--help") {
        fmt::print("{}", main_help);
        return exit_ok;
    }
    if (first == "--version") {
        fmt::print("reprise {} (reads trace format version {})\n", REPRISE_VERSION, trace::format_version);
        return exit_ok;
    }
    if (first == "help") {
        if (argc == 2) {
            fmt::print("{}", main_help);
            return exit_ok;
        }
        const Command* c = find_command(argv[2]);
        if (c == nullptr || argc > 3)
            return usage_error("", fmt::format("no help on {}", shown(argv[2])));
        fmt::print("{}", c->help);
        return exit_ok;
    }
    if (!first.empty() && first[0] == '-') {
        std::string near = reprise::closest_flag(first, {"--help", "--version"});
        return usage_error("", near.empty() ? fmt::format("unknown option {} (a command comes first)", shown(first))
                                            : fmt::format("unknown option {}; did you mean {}?", shown(first), near));
    }
    const Command* c = find_command(first);
    if (c == nullptr) {
        std::vector<std::string> names;
        for (const Command& k : commands())
            names.emplace_back(k.name);
        std::string near = reprise::closest_flag(first, names);
        return usage_error("", near.empty() ? fmt::format("unknown command {}", shown(first))
                                            : fmt::format("unknown command {}; did you mean {}?", shown(first), near));
    }
    Args args;
    if (c->passes_rest) {
        for (int i = 2; i < argc; ++i) {
            if (std::string_view(argv[i]) == "--") {
                args.rest.assign(argv + i + 1, argv + argc);
                argc = i;
                break;
            }
        }
    }
    if (auto why = parse_args(argc, argv, 2, c->flags, c->valued, args))
        return usage_error(c->name, *why);
    if (args.help) {
        fmt::print("{}", c->help);
        return exit_ok;
    }
    // The key: --record-key, else REPRISE_RECORD_KEY as the programs take it (for a command that reads traces).
    const bool key_given = args.has("--record-key");
    std::optional<std::string> key_path;
    if (key_given)
        key_path = args.options.at("--record-key").back();
    else if (const char* env = std::getenv("REPRISE_RECORD_KEY");  // reprise-allow: env (the key, as programs take it)
             env != nullptr && *env != '\0' && c->valued.contains("--record-key"))
        key_path = env;
    if (key_path) {
        std::string why;
        auto loaded = trace::load_trace_key(*key_path, why);
        if (!loaded.ok() && key_given) {
            fmt::print(stderr, "reprise {}: {}\n", c->name, why);
            return exit_usage;
        }
        if (!loaded.ok()) {
            // A key from the environment (kept from a service's unit, say) is needed only by a
            // sealed trace: a trace in the clear still reads, and a sealed one asks for its key.
            fmt::print(stderr, "reprise {}: note: REPRISE_RECORD_KEY: {}; going on without a key\n", c->name, why);
        } else {
            trace_key = *loaded;
        }
    }
    return c->run(args);
}

} // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        // The reader reports damage as values; this is for what is left (memory exhaustion).
        fmt::print(stderr, "reprise: {}\n", e.what());
        return exit_usage;
    }
}
