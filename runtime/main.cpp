// run_main: the runtime's command-line flags, --help, and the graceful-stop wiring.
#include "reprise/runtime/main.hpp"

#include <charconv>
#include <cstdlib>
#include <cstdio>
#include <fmt/core.h>
#include <optional>
#include <string_view>

namespace reprise {

namespace {

constexpr const char* runtime_usage = R"(Runtime options (reprise):
  --seed=N              seed of the deterministic PRNG (default: drawn at start, printed with --verbose-seed)
  --node=NAME           name of this node in traces and reports (default: node)
  --stack-size=BYTES    default fiber stack size, suffix k or m allowed (default: 256k, max 8m)
  --offload-threads=N   threads for blocking work and files (default: 4)
  --verbose-seed        print the PRNG seed on stderr at start
  --record=PATH         record every input of this run into the trace PATH (env: REPRISE_RECORD);
                        with --replay, records the replay again (`reprise diff` then finds no difference)
  --record-full         record written bytes in full (default: length and digest)
  --record-segment=BYTES  split the trace into PATH.0, PATH.1, ... of about BYTES each (k, m, g suffixes)
  --record-fsync        fsync the trace after every chunk (default: at the end)
  --replay=PATH         replay the trace PATH instead of touching the world (env: REPRISE_REPLAY);
                        the program's arguments come from the trace
  --speed=max|N         replay pace: max jumps straight to each recorded tick (default), N is N times
                        the recorded pace (1: as recorded)
  --break-at=N          replay: raise SIGTRAP just before event N is delivered (for gdb)
  --help                this text
  --                    end of runtime options; the rest goes to the program
)";

std::optional<std::uint64_t> parse_u64(std::string_view text) {
    std::uint64_t v = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc{} || end != text.data() + text.size() || text.empty())
        return std::nullopt;
    return v;
}

std::optional<std::uint64_t> parse_size(std::string_view text) {
    std::uint64_t scale = 1;
    if (!text.empty() && (text.back() == 'k' || text.back() == 'K'))
        scale = 1024;
    else if (!text.empty() && (text.back() == 'm' || text.back() == 'M'))
        scale = 1024 * 1024;
    else if (!text.empty() && (text.back() == 'g' || text.back() == 'G'))
        scale = 1024 * 1024 * 1024;
    if (scale != 1)
        text.remove_suffix(1);
    auto v = parse_u64(text);
    if (!v || *v > (UINT64_MAX / scale))
        return std::nullopt;
    return *v * scale;
}

struct Parsed {
    Options options;
    std::vector<std::string> args;
    bool help = false;
    bool verbose_seed = false;
};

// Returns an error message, or nothing when the flags are fine.
std::optional<std::string> parse_flags(int argc, char** argv, Parsed& out) {
    out.args.emplace_back(argc > 0 ? argv[0] : "program");
    bool runtime_flags = true;
    for (int i = 1; i < argc; ++i) {
        std::string_view arg = argv[i];
        if (!runtime_flags) {
            out.args.emplace_back(arg);
            continue;
        }
        if (arg == "--") {
            runtime_flags = false;
            continue;
        }
        auto value_of = [&](std::string_view flag) -> std::optional<std::string_view> {
            if (arg.size() > flag.size() && arg.substr(0, flag.size()) == flag && arg[flag.size()] == '=')
                return arg.substr(flag.size() + 1);
            return std::nullopt;
        };
        if (arg == "--help" || arg == "-h") {
            out.help = true;
        } else if (arg == "--verbose-seed") {
            out.verbose_seed = true;
        } else if (auto v = value_of("--seed")) {
            auto seed = parse_u64(*v);
            if (!seed)
                return fmt::format("--seed needs a number from 0 to {}, got '{}'", UINT64_MAX, *v);
            out.options.seed = *seed;
        } else if (auto v = value_of("--node")) {
            if (v->empty())
                return std::string("--node needs a name");
            out.options.node_name = std::string(*v);
        } else if (auto v = value_of("--stack-size")) {
            auto bytes = parse_size(*v);
            if (!bytes || *bytes < limits::stack_bytes_min || *bytes > limits::stack_bytes_max)
                return fmt::format("--stack-size needs a size from {}k to {}m, got '{}'", limits::stack_bytes_min / 1024,
                                   limits::stack_bytes_max / (1024 * 1024), *v);
            out.options.stack_bytes = static_cast<std::size_t>(*bytes);
        } else if (auto v = value_of("--offload-threads")) {
            auto n = parse_u64(*v);
            if (!n || *n < 1 || *n > limits::offload_threads_max)
                return fmt::format("--offload-threads needs a number from 1 to {}, got '{}'", limits::offload_threads_max, *v);
            out.options.offload_threads = static_cast<std::size_t>(*n);
        } else if (auto v = value_of("--record")) {
            if (v->empty())
                return std::string("--record needs a path");
            out.options.record_path = std::string(*v);
        } else if (arg == "--record-full") {
            out.options.record_full_outputs = true;
        } else if (arg == "--record-fsync") {
            out.options.record_fsync_every_chunk = true;
        } else if (auto v = value_of("--record-segment")) {
            auto bytes = parse_size(*v);
            if (!bytes || *bytes < 1024 * 1024)
                return fmt::format("--record-segment needs a size of at least 1m, got '{}'", *v);
            out.options.record_segment_bytes = *bytes;
        } else if (auto v = value_of("--replay")) {
            if (v->empty())
                return std::string("--replay needs a path");
            out.options.replay_path = std::string(*v);
        } else if (auto v = value_of("--speed")) {
            if (*v == "max") {
                out.options.replay_speed = 0;
            } else {
                auto n = parse_u64(*v);
                if (!n || *n < 1 || *n > 1'000'000)
                    return fmt::format("--speed needs max or a number from 1 to 1000000, got '{}'", *v);
                out.options.replay_speed = static_cast<std::uint32_t>(*n);
            }
        } else if (auto v = value_of("--break-at")) {
            auto n = parse_u64(*v);
            if (!n || *n == 0)
                return fmt::format("--break-at needs an event number from 1, got '{}'", *v);
            out.options.break_at = *n;
        } else {
            out.args.emplace_back(arg);
        }
    }
    if (out.options.record_path.empty())
        if (const char* p = std::getenv("REPRISE_RECORD"); p && *p)  // reprise-allow: env (the runtime's own mode)
            out.options.record_path = p;
    if (out.options.replay_path.empty())
        if (const char* p = std::getenv("REPRISE_REPLAY"); p && *p)  // reprise-allow: env (the runtime's own mode)
            out.options.replay_path = p;
    return std::nullopt;
}

} // namespace

int run_main(int argc, char** argv, std::function<int(MainContext&)> entry, ProgramInfo info) {
    Parsed parsed;
    std::string program = info.name.empty() ? (argc > 0 ? argv[0] : "program") : info.name;
    if (auto error = parse_flags(argc, argv, parsed)) {
        fmt::print(stderr, "{}: {}\n(see {} --help)\n", program, *error, program);
        return 2;
    }
    if (parsed.help) {
        fmt::print("Usage: {} [runtime options] [program options]\n\n", program);
        if (!info.usage.empty())
            fmt::print("{}\n\n", info.usage);
        fmt::print("{}", runtime_usage);
        std::fflush(stdout);
        return 0;
    }
    parsed.options.stop_on_signals = true;
    parsed.options.argv = parsed.args;
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
            std::string given, was;
            for (std::size_t i = 1; i < parsed.args.size(); ++i)
                given += " " + parsed.args[i];
            for (std::size_t i = 1; i < recorded.size(); ++i)
                was += " " + recorded[i];
            fmt::print(stderr, "{}: the arguments given ({}) differ from the recorded ones ({}); omit them to use the recorded ones\n",
                       program, given.empty() ? " none" : given, was.empty() ? " none" : was);
            return 2;
        }
        if (!recorded.empty())
            parsed.args = recorded;
    }
    if (parsed.verbose_seed)
        fmt::print(stderr, "{}: node '{}' seed {}\n", program, runtime->node_name(), runtime->seed());
    MainContext context{std::move(parsed.args), *runtime};
    return runtime->run([&] { return entry(context); });
}

} // namespace reprise
