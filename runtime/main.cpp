// run_main: the runtime's command-line flags, --help, and the graceful-stop wiring.
#include "reprise/runtime/main.hpp"

#include "reprise/runtime/internal/core.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <cstdio>
#include <fmt/core.h>
#include <optional>
#include <string_view>
#include <variant>

namespace reprise {

namespace {

constexpr const char* runtime_usage = R"(Runtime options (reprise; `--flag value` and `--flag=value` both work):
  --seed N              seed of the deterministic PRNG (default: drawn at start, printed with --verbose-seed)
  --node NAME           name of this node in traces and reports (default: node)
  --stack-size BYTES    default fiber stack size, suffix k or m allowed (default: 256k, max 8m)
  --offload-threads N   threads for blocking work and files (default: 4)
  --verbose-seed        print the PRNG seed on stderr at start
  --record PATH         record every input of this run into the trace PATH (env: REPRISE_RECORD);
                        with --replay, records the replay again (`reprise diff` then finds no difference).
                        A trace is never overwritten (an existing PATH is refused) and is created 0600;
                        PATH may hold %c (the next number: one past the highest such trace), %p (pid), %t (start time), %n (node), %%;
                        any other % is refused. %c goes in the file name (not a folder's); give
                        every pattern a %c (two runs in one second have the same %t)
  --record-full         record written bytes in full (default: length and digest); with --replay,
                        the re-recorded trace holds every written byte, even where the replayed
                        trace kept only digests
  --record-segment BYTES  split the trace into PATH.0, PATH.1, ... of about BYTES each as stored on
                        disk (compressed and sealed; k, m, g suffixes; at least 1m)
  --record-keep N       retention for a --record pattern: when this run starts, remove the oldest
                        earlier runs of the pattern (same folder, %c %p %t as wildcards, %n this
                        node, segments included) so that at most N-1 remain. Runs that crashed,
                        exited non-zero, were cut off or are still being written are always kept
                        and count toward N: N is not a ceiling (bound the disk with
                        --record-keep-bytes). %p, %t, %c in a folder's name are refused
  --record-keep-bytes SIZE  retention by size: the pattern's traces together stay within SIZE (K, M,
                        G, KiB... suffixes); old runs are removed to leave this run --record-max-bytes
                        (default: half of SIZE), and this run stops recording at the room left. When
                        the kept runs alone fill SIZE, this run records nothing and says so
  --record-max-bytes SIZE  this run's trace stops at SIZE bytes as stored (all segments): the
                        recording stops, says so once, and the program goes on unrecorded
  --record-fsync        fsync the trace after every chunk (default: at the end)
  --record-compress on|off  compress the trace's chunks with zstd (default: on)
  --record-key FILE     seal the trace with the key in FILE (64 hex digits, mode 0600; make one with
                        `reprise keygen FILE`); a replay of a sealed trace needs it too
                        (env: REPRISE_RECORD_KEY)
  --replay PATH         replay the trace PATH instead of touching the world (env: REPRISE_REPLAY);
                        the program's arguments come from the trace. Given several times: a joint
                        replay of those nodes' traces in one process, in happens-before order
  --speed max|N         replay pace: max jumps straight to each recorded tick (default), N is N times
                        the recorded pace (1: as recorded)
  --break-at [NODE:]N   replay: raise SIGTRAP just before event N is delivered (for gdb; past the
                        trace's end: exit 2); a joint replay names the NODE (name, NAME/K, index)
  --mark-stdio          replay: start each line the program prints on stdout and stderr with
                        [NODE #N +S.mmms]: the node, the event during which the line's newline
                        reached the fd (the last one replay had handed over), and its virtual
                        time; --break-at=N+1 stops just after it (docs/porting.md)
  --replay-any-program  replay: a trace another program recorded (its header names another
                        program) is replayed anyway, with a notice, instead of refused
  -h, --help            this text
  --                    end of runtime options; the rest goes to the program
)";

// Every flag the runtime takes, for "did you mean" on a near miss.
const std::vector<std::string> runtime_flags = {
    "--seed", "--node", "--stack-size", "--offload-threads", "--verbose-seed", "--record", "--record-full",
    "--record-segment", "--record-keep", "--record-keep-bytes", "--record-max-bytes", "--record-fsync", "--record-compress", "--record-key", "--replay", "--speed", "--break-at", "--mark-stdio", "--replay-any-program", "--help"};

// Returns an error message, or nothing when the flags are fine.
std::optional<std::string> parse_flags(int argc, char** argv, const ProgramInfo& info, CommandLine& out) {
    out.args.emplace_back(argc > 0 ? argv[0] : "program");
    // `--` ends the runtime's flags: what follows goes to the program untouched.
    int end = 1;
    while (end < argc && std::string_view(argv[end]) != "--")
        ++end;

    CLI::App app;
    app.set_help_flag();
    app.allow_extras();
    app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    std::string seed, node, speed, offload_threads, break_at, compress;
    std::uint64_t stack_bytes = 0, segment_bytes = 0, keep_bytes = 0, max_bytes = 0;
    std::string keep_runs;
    app.add_flag("-h,--help", out.help);
    app.add_flag("--verbose-seed", out.verbose_seed);
    auto* seed_opt = app.add_option("--seed", seed);
    auto* node_opt = app.add_option("--node", node);
    auto* stack_opt = app.add_option("--stack-size", stack_bytes)
                          ->transform(CLI::AsSizeValue(false))
                          ->check(CLI::Range(std::uint64_t{limits::stack_bytes_min}, std::uint64_t{limits::stack_bytes_max}));
    auto* threads_opt = app.add_option("--offload-threads", offload_threads);
    auto* record_opt = app.add_option("--record", out.options.record_path);
    auto* full_opt = app.add_flag("--record-full", out.options.record_full_outputs);
    auto* fsync_opt = app.add_flag("--record-fsync", out.options.record_fsync_every_chunk);
    // Sizes: CLI11 reads the suffixes; their lower bounds are checked below, in the project's words.
    auto* segment_opt = app.add_option("--record-segment", segment_bytes)->transform(CLI::AsSizeValue(false));
    auto* keep_opt = app.add_option("--record-keep", keep_runs);
    auto* keep_bytes_opt = app.add_option("--record-keep-bytes", keep_bytes)->transform(CLI::AsSizeValue(false));
    auto* max_bytes_opt = app.add_option("--record-max-bytes", max_bytes)->transform(CLI::AsSizeValue(false));
    auto* compress_opt = app.add_option("--record-compress", compress);
    auto* key_opt = app.add_option("--record-key", out.options.trace_key_path);
    std::vector<std::string> replays;
    auto* replay_opt = app.add_option("--replay", replays)->expected(1)->allow_extra_args(false)->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    auto* speed_opt = app.add_option("--speed", speed);
    auto* break_opt = app.add_option("--break-at", break_at);
    auto* mark_opt = app.add_flag("--mark-stdio", out.options.mark_stdio);
    auto* any_program_opt = app.add_flag("--replay-any-program", out.options.replay_any_program);

    std::vector<std::string> reversed;  // CLI11 takes the arguments last first
    for (int i = end - 1; i >= 1; --i)
        reversed.emplace_back(argv[i]);
    try {
        app.parse(reversed);
    } catch (const CLI::ParseError& e) {
        return std::string(e.what());
    }
    for (const std::string& extra : app.remaining()) {
        std::string_view flag = extra;
        if (flag.size() > 2 && flag.substr(0, 2) == "--") {
            flag = flag.substr(0, flag.find('='));
            bool the_programs = std::find(info.flags.begin(), info.flags.end(), flag) != info.flags.end();
            if (std::string near = closest_flag(flag, runtime_flags); !near.empty() && !the_programs)
                return fmt::format("unknown flag '{}'; did you mean '{}'? (a flag of the program itself goes after --)",
                                   flag, near);
        }
        out.args.push_back(extra);
    }
    for (int i = end + 1; i < argc; ++i)
        out.args.emplace_back(argv[i]);

    // Whole numbers, each with a message that says what the flag takes.
    auto number = [](const char* flag, const std::string& text, std::uint64_t min, std::uint64_t max,
                     std::string_view what) -> std::variant<std::uint64_t, std::string> {
        std::uint64_t n = 0;
        auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
        if (text.empty() || ec != std::errc{} || ptr != text.data() + text.size() || n < min || n > max)
            return fmt::format("{} needs {} from {} to {}, got '{}'", flag, what, min, max, text);
        return n;
    };
    if (*seed_opt) {
        auto n = number("--seed", seed, 0, UINT64_MAX, "a number");
        if (auto* error = std::get_if<std::string>(&n))
            return *error;
        out.options.seed = std::get<std::uint64_t>(n);
    }
    if (*node_opt) {
        if (node.empty())
            return std::string("--node needs a name");
        out.options.node_name = node;
    }
    if (*stack_opt)
        out.options.stack_bytes = static_cast<std::size_t>(stack_bytes);
    if (*threads_opt) {
        auto n = number("--offload-threads", offload_threads, 1, limits::offload_threads_max, "a number of threads");
        if (auto* error = std::get_if<std::string>(&n))
            return *error;
        out.options.offload_threads = static_cast<std::size_t>(std::get<std::uint64_t>(n));
    }
    // A size below its flag's minimum, said with what the flag is for and the smallest it takes.
    auto at_least = [](const char* flag, std::uint64_t got, std::uint64_t min, std::string_view why) -> std::optional<std::string> {
        if (got >= min)
            return std::nullopt;
        return fmt::format("{} needs a size of at least {} bytes ({} KiB; k, m, g suffixes allowed): {}; got {}", flag,
                           min, min / 1024, why, got);
    };
    if (*segment_opt) {
        if (auto error = at_least("--record-segment", segment_bytes, limits::trace_segment_bytes_min,
                                  "each segment holds a header and whole chunks"))
            return error;
        out.options.record_segment_bytes = segment_bytes;
    }
    if (*keep_opt) {
        auto n = number("--record-keep", keep_runs, 1, limits::trace_counter_max, "a number of runs");
        if (auto* error = std::get_if<std::string>(&n))
            return *error;
        out.options.record_keep_runs = std::get<std::uint64_t>(n);
    }
    if (*keep_bytes_opt) {
        if (auto error = at_least("--record-keep-bytes", keep_bytes, limits::trace_keep_bytes_min,
                                  "the budget of all the pattern's traces, which holds at least one run"))
            return error;
        out.options.record_keep_bytes = keep_bytes;
    }
    if (*max_bytes_opt) {
        if (auto error = at_least("--record-max-bytes", max_bytes, limits::trace_run_bytes_min,
                                  "a smaller trace would hold little more than its header"))
            return error;
        out.options.record_max_bytes = max_bytes;
    }
    if (*compress_opt) {
        if (compress != "on" && compress != "off")
            return fmt::format("--record-compress takes on or off, got '{}'", compress);
        out.options.record_compress = compress == "on";
    }
    if (*key_opt && out.options.trace_key_path.empty())
        return std::string("--record-key needs a file");
    if (*record_opt && out.options.record_path.empty())
        return std::string("--record needs a path");
    for (const std::string& r : replays)
        if (r.empty())
            return std::string("--replay needs a path");
    out.replay_paths = replays;
    if (!replays.empty())
        out.options.replay_path = replays.front();
    (void)replay_opt;
    if (*speed_opt) {
        if (speed == "max") {
            out.options.replay_speed = 0;
        } else {
            auto n = number("--speed", speed, 1, 1'000'000, "max or a number");
            if (auto* error = std::get_if<std::string>(&n))
                return *error;
            out.options.replay_speed = static_cast<std::uint32_t>(std::get<std::uint64_t>(n));
        }
    }
    if (*break_opt) {
        // NODE:N names a node of a joint replay (or the one replayed node).
        if (const auto colon = break_at.rfind(':'); colon != std::string::npos) {
            out.break_at_node = break_at.substr(0, colon);
            if (out.break_at_node.empty())
                return fmt::format("--break-at takes N or NODE:N, got '{}'", break_at);
            break_at = break_at.substr(colon + 1);
        }
        auto n = number("--break-at", break_at, 1, UINT64_MAX, "an event number");
        if (auto* error = std::get_if<std::string>(&n))
            return *error;
        out.options.break_at = std::get<std::uint64_t>(n);
    }

    if (out.options.record_path.empty())
        if (const char* p = std::getenv("REPRISE_RECORD"); p && *p)  // reprise-allow: env (the runtime's own mode)
            out.options.record_path = p;
    if (out.options.replay_path.empty())
        if (const char* p = std::getenv("REPRISE_REPLAY"); p && *p) {  // reprise-allow: env (the runtime's own mode)
            out.options.replay_path = p;
            out.replay_paths = {p};
        }
    if (out.replay_paths.size() > 1 && !out.options.record_path.empty())
        return std::string("--record applies to one replay at a time, not to a joint replay of several traces");
    if (out.options.trace_key_path.empty())
        if (const char* p = std::getenv("REPRISE_RECORD_KEY"); p && *p)  // reprise-allow: env (the runtime's own mode)
            out.options.trace_key_path = p;

    // Flags that cannot take effect are errors, not silence.
    const bool replaying = !out.options.replay_path.empty(), recording = !out.options.record_path.empty();
    for (auto* opt : {speed_opt, break_opt, mark_opt, any_program_opt})
        if (*opt && !replaying)
            return fmt::format("{} applies to a replay: add --replay=TRACE", opt->get_name());
    for (auto* opt : {full_opt, fsync_opt, segment_opt, compress_opt, keep_opt, keep_bytes_opt, max_bytes_opt})
        if (*opt && !recording)
            return fmt::format("{} applies to a recording: add --record=PATH", opt->get_name());
    // Retention finds a pattern's earlier runs by the parts that differ between runs.
    if ((*keep_opt || *keep_bytes_opt) &&
        out.options.record_path.substr(out.options.record_path.rfind('/') + 1).find_first_of('%') == std::string::npos)
        return fmt::format("{} applies to a --record pattern: put %c, %p, %t or %n in the trace's file name "
                           "(e.g. --record=kv.%c.trace)",
                           *keep_opt ? "--record-keep" : "--record-keep-bytes");
    // Retention lists one folder: a folder whose name changes from run to run (%p, %t, %c) holds
    // one run each, and retention would find nothing to remove, silently.
    if (*keep_opt || *keep_bytes_opt) {
        const std::string& path = out.options.record_path;
        const std::size_t slash = path.rfind('/');
        for (std::size_t i = 0; slash != std::string::npos && i + 1 < slash; ++i) {
            if (path[i] != '%')
                continue;
            if (path[i + 1] == 'p' || path[i + 1] == 't' || path[i + 1] == 'c')
                return fmt::format("{} applies to a --record pattern whose runs share a folder: %{} is in a folder's "
                                   "name in --record={}, so each run gets its own folder and retention would find no "
                                   "earlier run; put %c, %p and %t in the trace's file name (e.g. "
                                   "--record=traces/kv.%c.trace)",
                                   *keep_opt ? "--record-keep" : "--record-keep-bytes", path[i + 1], path);
            ++i;
        }
    }
    if (*key_opt && !recording && !replaying)
        return std::string("--record-key applies to a recording or a replay: add --record=PATH or --replay=TRACE");
    return std::nullopt;
}

// Edits between two names, a swap of neighbours counting as one (optimal string alignment).
std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
    for (std::size_t i = 0; i <= a.size(); ++i)
        d[i][0] = i;
    for (std::size_t j = 0; j <= b.size(); ++j)
        d[0][j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i)
        for (std::size_t j = 1; j <= b.size(); ++j) {
            d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
        }
    return d[a.size()][b.size()];
}

} // namespace

std::string closest_flag(std::string_view unknown, const std::vector<std::string>& known) {
    auto name_of = [](std::string_view flag) {
        while (!flag.empty() && flag.front() == '-')
            flag.remove_prefix(1);
        return flag;
    };
    std::string_view name = name_of(unknown);
    std::string best;
    std::size_t best_distance = SIZE_MAX;
    for (const std::string& candidate : known) {
        std::string_view other = name_of(candidate);
        if (other == name)
            return {};  // a known flag is not a near miss
        std::size_t distance = edit_distance(name, other);
        std::size_t allowed = std::min(name.size(), other.size()) <= 4 ? 1 : 2;
        if (distance <= allowed && distance < best_distance) {
            best = candidate;
            best_distance = distance;
        }
    }
    return best;
}

CommandLine parse_command_line(int argc, char** argv, const ProgramInfo& info) {
    CommandLine out;
    if (auto error = parse_flags(argc, argv, info, out))
        out.error = std::move(*error);
    return out;
}

void start_entry(Runtime& runtime, const ProgramEntry& entry, std::vector<std::string> args) {
    REPRISE_ASSERT_MSG(entry.main != nullptr, "a ProgramEntry needs a main function");
    // The context lives as long as the run: the runtime keeps the main function until it ends.
    auto context = std::make_shared<MainContext>(MainContext{std::move(args), runtime});
    runtime.start([context, main = entry.main] { return main(*context); });
}

int run_entry(Runtime& runtime, const ProgramEntry& entry, std::vector<std::string> args) {
    start_entry(runtime, entry, std::move(args));
    while (!runtime.step()) {
    }
    return runtime.result();
}

int run_main(int argc, char** argv, std::function<int(MainContext&)> main, ProgramInfo info) {
    return run_main(argc, argv, ProgramEntry{.name = std::move(info.name), .main = std::move(main), .usage = std::move(info.usage),
                                      .flags = std::move(info.flags)});
}

int run_main(int argc, char** argv, const ProgramEntry& entry) {
    const ProgramInfo info{.name = entry.name, .usage = entry.usage, .flags = entry.flags};
    std::string program = entry.name.empty() ? (argc > 0 ? argv[0] : "program") : entry.name;
    CommandLine parsed = parse_command_line(argc, argv, info);
    if (!parsed.error.empty()) {
        fmt::print(stderr, "{}: {}\n(see {} --help)\n", program, parsed.error, program);
        return 2;
    }
    if (parsed.help) {
        fmt::print("Usage: {} [runtime options] [program options] [-- program arguments]\n\n", program);
        if (!entry.usage.empty())
            fmt::print("{}\n\n", entry.usage);
        fmt::print("{}", runtime_usage);
        std::fflush(stdout);
        return 0;
    }
    parsed.options.stop_on_signals = true;
    parsed.options.argv = parsed.args;
    parsed.options.program_name = entry.name;
    if (parsed.replay_paths.size() > 1) {
        if (parsed.args.size() > 1) {
            fmt::print(stderr, "{}: a joint replay runs each trace's recorded arguments: give none\n", program);
            return 2;
        }
        const std::string break_at = parsed.options.break_at == 0 ? std::string()
                                     : parsed.break_at_node.empty()
                                         ? std::to_string(parsed.options.break_at)
                                         : fmt::format("{}:{}", parsed.break_at_node, parsed.options.break_at);
        parsed.options.break_at = 0;
        return detail::run_joint_replay(entry, parsed.options, parsed.replay_paths, break_at, program);
    }
    std::optional<Runtime> runtime;
    try {
        runtime.emplace(parsed.options);
    } catch (const std::exception& e) {
        fmt::print(stderr, "{}: {}\n", program, e.what());
        return 2;
    }
    if (runtime->replaying()) {
        // The program's own arguments come from the trace; given ones must match.
        const auto& recorded = runtime->recorded_argv();
        if (parsed.args.size() > 1 && (recorded.empty() || std::vector<std::string>(parsed.args.begin() + 1, parsed.args.end()) !=
                                                                std::vector<std::string>(recorded.begin() + 1, recorded.end()))) {
            auto joined = [](const std::vector<std::string>& args) {
                std::string out;
                for (std::size_t i = 1; i < args.size(); ++i)
                    out += (out.empty() ? "" : " ") + args[i];
                return out.empty() ? std::string("none") : out;
            };
            fmt::print(stderr, "{}: the arguments given ({}) differ from the recorded ones ({}); omit them to use the recorded ones\n",
                       program, joined(parsed.args), joined(recorded));
            return 2;
        }
        if (!recorded.empty())
            parsed.args = recorded;
    }
    if (!parsed.break_at_node.empty() && parsed.break_at_node != runtime->node_name() && parsed.break_at_node != "0") {
        fmt::print(stderr, "{}: --break-at {}:{}: the trace is of node '{}'\n", program, parsed.break_at_node,
                   parsed.options.break_at, runtime->node_name());
        return 2;
    }
    if (parsed.verbose_seed)
        fmt::print(stderr, "{}: node '{}' seed {}\n", program, runtime->node_name(), runtime->seed());
    return run_entry(*runtime, entry, std::move(parsed.args));
}

} // namespace reprise
