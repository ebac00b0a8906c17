// run_main: the runtime's command-line flags, --help, and the graceful-stop wiring.
#include "runtime/main.hpp"

#include <charconv>
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
        } else {
            out.args.emplace_back(arg);
        }
    }
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
    Runtime runtime(parsed.options);
    if (parsed.verbose_seed)
        fmt::print(stderr, "{}: node '{}' seed {}\n", program, runtime.node_name(), runtime.seed());
    MainContext context{std::move(parsed.args), runtime};
    return runtime.run([&] { return entry(context); });
}

} // namespace reprise
