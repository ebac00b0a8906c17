// The simulation runner: flags, one World per seed, the determinism self-check, and the reproduction line.
#include "reprise/sim/runner.hpp"

#include "reprise/clock/internal/system_clock.hpp"
#include "reprise/runtime/internal/os_random.hpp"
#include "reprise/runtime/main.hpp"

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <stdexcept>

namespace reprise::sim {

std::string RunContext::flag(const std::string& name) const {
    for (auto& [k, v] : values)
        if (k == name)
            return v;
    return "";
}

std::int64_t RunContext::flag_int(const std::string& name, std::int64_t fallback) const {
    const std::string v = flag(name);
    if (v.empty())
        return fallback;
    std::int64_t out = 0;
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
    if (ec != std::errc() || end != v.data() + v.size())
        throw std::invalid_argument(fmt::format("{} needs a number, not '{}'", name, v));
    return out;
}

Result<Duration> parse_duration(std::string_view text) {
    std::size_t digits = 0;
    while (digits < text.size() && (std::isdigit(static_cast<unsigned char>(text[digits])) || text[digits] == '.'))
        ++digits;
    if (digits == 0)
        return Errc::invalid_argument;
    double amount = 0;
    try {
        amount = std::stod(std::string(text.substr(0, digits)));
    } catch (...) {
        return Errc::invalid_argument;
    }
    const std::string_view unit = text.substr(digits);
    double scale = 0;
    if (unit.empty() || unit == "s")
        scale = 1e9;
    else if (unit == "ms")
        scale = 1e6;
    else if (unit == "us")
        scale = 1e3;
    else if (unit == "ns")
        scale = 1;
    else if (unit == "m" || unit == "min")
        scale = 60e9;
    else if (unit == "h")
        scale = 3600e9;
    else
        return Errc::invalid_argument;
    const double ns = amount * scale;
    if (!(ns >= 0) || ns > 9.2e18)
        return Errc::invalid_argument;
    return Duration(static_cast<std::int64_t>(ns));
}

namespace {

std::string duration_text(Duration d) {
    const std::int64_t ns = d.count();
    if (ns % 1'000'000'000 == 0)
        return fmt::format("{}s", ns / 1'000'000'000);
    if (ns % 1'000'000 == 0)
        return fmt::format("{}ms", ns / 1'000'000);
    if (ns % 1'000 == 0)
        return fmt::format("{}us", ns / 1'000);
    return fmt::format("{}ns", ns);
}

struct Settings {
    std::uint64_t seed = 0;
    bool seed_given = false;
    std::uint64_t seeds = 1;
    Duration time{};
    bool faults = false;
    Duration fault_interval = std::chrono::seconds(2);
    Duration fault_duration = std::chrono::seconds(1);
    bool no_crash = false;
    Latency latency{};
    double fsync_failure_rate = -1;
    std::uint64_t disk_capacity = 0;
    std::string trace_dir;
    bool check_determinism = false;
    bool verbose = false;
    std::string failure_dir;  ///< "" : <name>-failures; "none": nothing saved
    std::vector<std::pair<std::string, std::string>> values;
};

struct Outcome {
    std::uint64_t hash = 0;
    std::uint64_t events = 0;
    std::uint64_t wakeups = 0;
    std::int64_t virtual_ns = 0;
    std::int64_t wall_ns = 0;
    std::string failure;
    std::string bad_usage;  ///< setup refused the simulation's flags (std::invalid_argument)
    std::string description;  ///< Simulation::describe's words
    std::string inconclusive;  ///< Simulation::inconclusive's words (a run that passed)
    bool saved = false;       ///< Simulation::save wrote into the save folder
    std::vector<std::string> log;
    std::string repro;
};

WorldOptions world_options(const Settings& s, std::uint64_t seed, const std::string& trace_dir) {
    WorldOptions o;
    o.seed = seed;
    o.latency = s.latency;
    o.trace_folder = trace_dir;
    if (s.fsync_failure_rate >= 0 || s.disk_capacity > 0) {
        DiskFaults d;
        if (s.fsync_failure_rate >= 0)
            d.sync_failure_rate = s.fsync_failure_rate;
        if (s.disk_capacity > 0)
            d.capacity_bytes = s.disk_capacity;
        o.disk_faults = d;
    }
    if (s.faults) {
        o.faults.mean_interval = s.fault_interval;
        o.faults.mean_duration = s.fault_duration;
        if (s.no_crash)
            o.faults.crash_restart = 0;
    }
    return o;
}

/// One run of one seed. When it fails and `save_dir` is given, Simulation::save writes there.
std::string reproduce_command(const std::string& name, const Settings& s, std::uint64_t seed);

Outcome run_once(const Simulation& sim, const Settings& s, std::uint64_t seed, const std::string& trace_dir,
                 const std::string& save_dir = "", const std::string& name = "") {
    Outcome out;
    RunContext ctx{.seed = seed, .time = s.time, .values = s.values, .reproduce = reproduce_command(name, s, seed)};
    const std::int64_t wall_start = detail::read_monotonic_ns();
    try {
        World world(world_options(s, seed, trace_dir));
        try {
            sim.setup(world, ctx);
        } catch (const std::invalid_argument& e) {
            out.bad_usage = e.what();
            return out;
        }
        world.run_until(
            [&] {
                for (NodeId n = 0; n < world.node_count(); ++n)
                    if (world.state(n) != NodeState::exited && world.state(n) != NodeState::killed)
                        return false;
                return true;
            },
            s.time);
        out.wall_ns = detail::read_monotonic_ns() - wall_start;
        out.hash = world.hash();
        out.events = world.events();
        out.wakeups = world.wakeups();
        out.virtual_ns = world.now().count();
        out.log = world.log();
        out.repro = world.repro_line();
        if (sim.check)
            out.failure = sim.check(world, ctx);
        if (sim.describe)
            out.description = sim.describe(world, ctx);
        if (out.failure.empty() && sim.inconclusive)
            out.inconclusive = sim.inconclusive(world, ctx);
        if (!out.failure.empty() && !save_dir.empty() && sim.save) {
            sim.save(world, ctx, save_dir);
            out.saved = true;
        }
    } catch (const std::exception& e) {
        out.wall_ns = detail::read_monotonic_ns() - wall_start;
        out.failure = fmt::format("the run threw: {}", e.what());
    }
    return out;
}

std::string reproduce_command(const std::string& name, const Settings& s, std::uint64_t seed) {
    std::string cmd = fmt::format("{} --seed {} --time {}", name, seed, duration_text(s.time));
    if (s.faults)
        cmd += fmt::format(" --faults on --fault-interval {} --fault-duration {}{}", duration_text(s.fault_interval),
                           duration_text(s.fault_duration), s.no_crash ? " --no-crash" : "");
    if (s.fsync_failure_rate >= 0)
        cmd += fmt::format(" --fsync-failure-rate {}", s.fsync_failure_rate);
    if (s.disk_capacity > 0)
        cmd += fmt::format(" --disk-capacity {}", s.disk_capacity);
    if (s.latency.min != Latency{}.min || s.latency.max != Latency{}.max)
        cmd += fmt::format(" --latency {}..{}", duration_text(s.latency.min), duration_text(s.latency.max));
    for (auto& [k, v] : s.values)
        if (!v.empty())
            cmd += fmt::format(" {} {}", k, v);
    return cmd;
}

/// The first kind of failure: the text before the first ':' ("linearizability").
std::string failure_kind(const std::string& failure) {
    const auto colon = failure.find(':');
    std::string kind = failure.substr(0, colon == std::string::npos ? std::min<std::size_t>(failure.size(), 40) : colon);
    return kind.empty() ? std::string("failure") : kind;
}

/// A folder of its own for a failed seed's files under `root`: root/seed-N, or root/seed-N.2, ...
/// when that holds something already (what is there is never overwritten). "" when none can be made.
std::string fresh_failure_folder(const std::string& root, std::uint64_t seed) {
    std::error_code ec;
    // A root the runner creates is its owner's alone, as the seed folders in it are (one given
    // that exists keeps its mode: it is the user's).
    if (!std::filesystem::exists(root, ec)) {
        std::filesystem::create_directories(root, ec);
        if (ec)
            return "";
        std::filesystem::permissions(root, std::filesystem::perms::owner_all, ec);
    }
    for (int attempt = 1; attempt <= 100; ++attempt) {
        std::string dir = fmt::format("{}/seed-{}", root, seed);
        if (attempt > 1)
            dir += fmt::format(".{}", attempt);
        if (std::filesystem::exists(dir, ec) && !(std::filesystem::is_directory(dir, ec) && std::filesystem::is_empty(dir, ec)))
            continue;
        std::filesystem::create_directories(dir, ec);
        if (ec)
            return "";
        // Traces hold every byte the nodes sent: the folder is its owner's alone, as the runtime's are.
        std::filesystem::permissions(dir, std::filesystem::perms::owner_all, ec);
        return dir;
    }
    return "";
}

} // namespace

int run_simulation(int argc, char** argv, const Simulation& sim) {
    const std::string name = !sim.name.empty() ? sim.name : (argc > 0 ? argv[0] : "simulation");
    if (!sim.setup) {
        fmt::print(stderr, "{}: the Simulation has no setup\n", name);
        return 2;
    }
    Settings s;
    s.time = sim.default_time;
    std::string time_text, interval_text, duration_text_flag, latency_text, faults_text, seeds_text, seed_text;
    CLI::App app{sim.description.empty() ? name + ": a deterministic simulation" : sim.description, name};
    app.add_option("--seed", seed_text, "the first seed, 0 to 2^64-1 (default: drawn and printed)");
    app.add_option("--seeds", seeds_text, "how many seeds to run: K (N, N+1, ...; default 1), or A..B (seeds A to B)");
    app.add_option("--time", time_text,
                   fmt::format("virtual time of one run (10s, 500ms, 5m; default {})", duration_text(sim.default_time)));
    app.add_option("--faults", faults_text, "random faults from the seed: on or off (default off)");
    app.add_option("--fault-interval", interval_text, "mean virtual time between two faults (default 2s)");
    app.add_option("--fault-duration", duration_text_flag, "mean time a fault lasts (default 1s)");
    app.add_flag("--no-crash", s.no_crash, "random faults never crash a node");
    app.add_option("--latency", latency_text, "one-way link latency MIN..MAX (default 50us..500us)");
    app.add_option("--fsync-failure-rate", s.fsync_failure_rate, "chance in [0, 1] that an fsync fails with EIO, on every node's disk")
        ->check(CLI::Range(0.0, 1.0));
    app.add_option("--disk-capacity", s.disk_capacity, "bytes every node's disk holds (a full disk fails writes with ENOSPC)");
    app.add_option("--trace-dir", s.trace_dir, "record every node's trace into this folder");
    app.add_flag("--check-determinism", s.check_determinism,
                 "run each seed twice, and once more recording, and compare every event's hash");
    app.add_option("--failure-dir", s.failure_dir,
                   "a failed seed's traces and findings go to DIR/seed-N (default NAME-failures; none: not saved)");
    app.add_flag("-v,--verbose", s.verbose, "print the log of faults and node events");
    // CLI11 keeps a reference to each value: the vector must not grow after the first is taken.
    s.values.reserve(sim.flags.size());
    for (auto& [flag, help] : sim.flags) {
        s.values.emplace_back(flag, "");
        app.add_option(flag, s.values.back().second, help);
    }
    // A flag nobody defines is refused with the nearest one ("did you mean"), before CLI11
    // reports it among its extras.
    std::vector<std::string> known{"--help"};
    for (const CLI::Option* o : app.get_options())
        for (const std::string& l : o->get_lnames())
            known.push_back("--" + l);
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "--")
            break;
        if (!arg.starts_with("--"))
            continue;
        const std::string flag(arg.substr(0, arg.find('=')));
        if (std::find(known.begin(), known.end(), flag) != known.end())
            continue;
        const std::string near = closest_flag(flag, known);
        fmt::print(stderr, "{}: unknown flag '{}'{}\n(see {} --help)\n", name, flag,
                   near.empty() ? std::string() : fmt::format("; did you mean '{}'?", near), name);
        return 2;
    }
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp&) {
        fmt::print("{}", app.help());
        return 0;
    } catch (const CLI::ParseError& e) {
        fmt::print(stderr, "{}: {}\n(see {} --help)\n", name, e.what(), name);
        return 2;
    }
    s.seed_given = app.count("--seed") > 0;
    auto bad = [&](std::string msg) {
        fmt::print(stderr, "{}: {}\n(see {} --help)\n", name, msg, name);
        return 2;
    };
    if (s.seed_given) {
        // Digits only: "-1" is not read as 2^64-1.
        const char* end = seed_text.data() + seed_text.size();
        auto [p, ec] = std::from_chars(seed_text.data(), end, s.seed);
        if (seed_text.empty() || seed_text.front() == '-' || ec != std::errc() || p != end)
            return bad(fmt::format("--seed: '{}' is not a number from 0 to {}", seed_text, UINT64_MAX));
    }
    if (!time_text.empty()) {
        auto t = parse_duration(time_text);
        if (!t.ok())
            return bad(fmt::format("--time: '{}' is not a duration (10s, 500ms, 5m)", time_text));
        if (t->count() == 0)
            return bad("--time must be more than 0");
        s.time = *t;
    }
    if (!interval_text.empty()) {
        auto t = parse_duration(interval_text);
        if (!t.ok() || t->count() == 0)
            return bad(fmt::format("--fault-interval: '{}' is not a duration", interval_text));
        s.fault_interval = *t;
        s.faults = true;
    }
    if (!duration_text_flag.empty()) {
        auto t = parse_duration(duration_text_flag);
        if (!t.ok())
            return bad(fmt::format("--fault-duration: '{}' is not a duration", duration_text_flag));
        s.fault_duration = *t;
    }
    if (!faults_text.empty()) {
        if (faults_text != "on" && faults_text != "off")
            return bad(fmt::format("--faults takes on or off, not '{}'", faults_text));
        s.faults = faults_text == "on";
    }
    if (!latency_text.empty()) {
        const auto dots = latency_text.find("..");
        auto lo = parse_duration(latency_text.substr(0, dots));
        auto hi = dots == std::string::npos ? lo : parse_duration(latency_text.substr(dots + 2));
        if (!lo.ok() || !hi.ok())
            return bad(fmt::format("--latency: '{}' is not MIN..MAX (e.g. 100us..2ms)", latency_text));
        if (*hi < *lo)
            return bad(fmt::format("--latency {}: MIN is more than MAX", latency_text));
        s.latency = Latency{*lo, *hi};
    }
    if (!seeds_text.empty()) {
        const auto dots = seeds_text.find("..");
        auto number = [](std::string_view t, std::uint64_t& out) {
            auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), out);
            return ec == std::errc() && end == t.data() + t.size();
        };
        if (dots == std::string::npos) {
            if (!number(seeds_text, s.seeds))
                return bad(fmt::format("--seeds takes a count (20) or a range (100..199), not '{}'", seeds_text));
        } else {
            std::uint64_t first = 0, last = 0;
            if (!number(std::string_view(seeds_text).substr(0, dots), first) ||
                !number(std::string_view(seeds_text).substr(dots + 2), last) || last < first)
                return bad(fmt::format("--seeds {}: a range is FIRST..LAST with FIRST <= LAST", seeds_text));
            if (s.seed_given)
                return bad("--seed and a --seeds range both say where to start: give one");
            s.seed = first;
            s.seeds = last - first + 1;
            s.seed_given = true;
        }
    }
    if (s.seeds == 0)
        return bad("--seeds must be at least 1");
    const std::string failure_root = s.failure_dir.empty() ? name + "-failures" : s.failure_dir;
    if (!s.seed_given) {
        s.seed = detail::os_random_u64() >> 1;
        fmt::print(stderr, "{}: seed {} (--seed {} repeats it)\n", name, s.seed, s.seed);
    }

    int failures = 0;
    std::map<std::string, std::uint64_t> failures_by_kind;
    std::map<std::string, std::uint64_t> inconclusive_by_kind;  ///< runs that passed without every verdict
    std::int64_t virtual_total_ns = 0;
    const std::int64_t sweep_start = detail::read_monotonic_ns();
    const std::uint64_t progress_every = std::max<std::uint64_t>(1, s.seeds / 10);
    for (std::uint64_t i = 0; i < s.seeds; ++i) {
        const std::uint64_t seed = s.seed + i;
        std::string trace_dir = s.trace_dir;
        if (!trace_dir.empty() && s.seeds > 1)
            trace_dir = fmt::format("{}/seed-{}", s.trace_dir, seed);
        if (!trace_dir.empty()) {
            // Traces are never overwritten: a folder that holds anything already is refused.
            std::error_code ec;
            if (std::filesystem::exists(trace_dir, ec) && !std::filesystem::is_directory(trace_dir, ec))
                return bad(fmt::format("--trace-dir {} is not a folder", trace_dir));
            if (std::filesystem::exists(trace_dir, ec) && !std::filesystem::is_empty(trace_dir, ec))
                return bad(fmt::format("--trace-dir {} is not empty; traces are never overwritten: give another folder",
                                       trace_dir));
            std::filesystem::create_directories(trace_dir, ec);
            if (ec)
                return bad(fmt::format("--trace-dir {}: cannot create it: {}", trace_dir, ec.message()));
            std::filesystem::permissions(trace_dir, std::filesystem::perms::owner_all, ec);
        }
        Outcome a = run_once(sim, s, seed, trace_dir, trace_dir, name);
        if (!a.bad_usage.empty())
            return bad(a.bad_usage);
        if (s.verbose)
            for (auto& line : a.log)
                fmt::print("  {}\n", line);
        std::string failure = a.failure;
        bool nondeterministic = false;
        if (failure.empty() && s.check_determinism) {
            Outcome b = run_once(sim, s, seed, "");
            nondeterministic = b.hash != a.hash || b.events != a.events;
            if (nondeterministic)
                failure = fmt::format("not deterministic: the same seed ran twice gave hash {:016x} ({} events), then "
                                      "{:016x} ({} events)",
                                      a.hash, a.events, b.hash, b.events);
            else if (trace_dir.empty()) {
                // Recording must not change the run.
                std::error_code ec;
                std::string tmpl = (std::filesystem::temp_directory_path(ec) / "reprise-sim-XXXXXX").string();
                if (::mkdtemp(tmpl.data()) != nullptr) {
                    Outcome c = run_once(sim, s, seed, tmpl);
                    std::filesystem::remove_all(tmpl, ec);
                    nondeterministic = c.hash != a.hash || c.events != a.events;
                    if (nondeterministic)
                        failure = fmt::format("recording changed the run: hash {:016x} ({} events) without traces, "
                                              "{:016x} ({} events) with",
                                              a.hash, a.events, c.hash, c.events);
                }
            }
        }
        const double virtual_s = static_cast<double>(a.virtual_ns) / 1e9;
        const double wall_s = static_cast<double>(a.wall_ns) / 1e9;
        virtual_total_ns += a.virtual_ns;
        fmt::print("seed={} {} events={} wakeups={} virtual={:.3f}s wall={:.3f}s speed={:.0f}x hash={:016x}{}{}\n", seed,
                   failure.empty() ? "ok" : "FAILED", a.events, a.wakeups, virtual_s, wall_s,
                   wall_s > 0 ? virtual_s / wall_s : 0.0, a.hash, a.description.empty() ? "" : " " + a.description,
                   s.check_determinism && failure.empty()
                       ? (trace_dir.empty() ? " deterministic (twice, and recording)" : " deterministic (twice)")
                       : "");
        if (!failure.empty()) {
            ++failures;
            fmt::print("  what failed: {}\n", failure);
            if (!s.verbose)
                for (auto& line : a.log)
                    fmt::print("  {}\n", line);
            ++failures_by_kind[nondeterministic ? std::string("not deterministic") : failure_kind(failure)];
            // The traces and findings of the failed seed: recorded already, or run again recording.
            std::string saved_to;
            if (a.saved)
                saved_to = trace_dir;
            else if (s.failure_dir != "none" && trace_dir.empty() && !nondeterministic) {
                if (std::string dir = fresh_failure_folder(failure_root, seed); dir.empty()) {
                    fmt::print("  (cannot create a folder under {} for the failure's traces)\n", failure_root);
                } else {
                    Outcome again = run_once(sim, s, seed, dir, dir, name);
                    if (again.hash != a.hash)
                        fmt::print("  (the recording run of this seed went differently: hash {:016x}, not {:016x})\n",
                                   again.hash, a.hash);
                    saved_to = dir;
                }
            } else if (!trace_dir.empty())
                saved_to = trace_dir;
            if (!saved_to.empty())
                fmt::print("  saved: {} (every node's trace{})\n", saved_to, sim.save ? ", and the run's findings" : "");
            fmt::print("  reproduce: {}{}\n", reproduce_command(name, s, seed), nondeterministic ? " --check-determinism" : "");
            fmt::print("  run: {}\n", a.repro);
        }
        if (failure.empty() && !a.inconclusive.empty())
            ++inconclusive_by_kind[a.inconclusive];
        std::fflush(stdout);
        if (s.seeds > 1 && ((i + 1) % progress_every == 0 || i + 1 == s.seeds)) {
            fmt::print(stderr, "{}: {} of {} seeds run, {} failed, {:.1f}s wall\n", name, i + 1, s.seeds, failures,
                       static_cast<double>(detail::read_monotonic_ns() - sweep_start) / 1e9);
            std::fflush(stderr);
        }
    }
    if (s.seeds > 1) {
        std::uint64_t inconclusive = 0;
        std::string unproven;
        for (auto& [kind, count] : inconclusive_by_kind) {
            inconclusive += count;
            unproven += fmt::format("{}{} {}", unproven.empty() ? "" : ", ", kind, count);
        }
        const std::uint64_t passed = s.seeds - static_cast<std::uint64_t>(failures);
        if (inconclusive == 0)
            fmt::print("{} of {} seeds passed\n", passed, s.seeds);
        else
            fmt::print("{} of {} seeds passed, {} of them without every verdict ({}): those checks proved nothing\n",
                       passed, s.seeds, inconclusive, unproven);
        std::string kinds;
        for (auto& [kind, count] : failures_by_kind)
            kinds += fmt::format("{}{} {}", kinds.empty() ? "" : ", ", kind, count);
        if (inconclusive > 0)
            kinds += fmt::format("; inconclusive {}", unproven);
        const double wall_total = static_cast<double>(detail::read_monotonic_ns() - sweep_start) / 1e9;
        fmt::print("summary: seeds {}..{}, failures {}, virtual time {:.1f}s in {:.1f}s wall{}\n", s.seed,
                   s.seed + s.seeds - 1, kinds.empty() ? std::string("none") : kinds,
                   static_cast<double>(virtual_total_ns) / 1e9, wall_total,
                   wall_total > 0 ? fmt::format(" ({:.0f}x)", static_cast<double>(virtual_total_ns) / 1e9 / wall_total) : "");
    }
    return failures == 0 ? 0 : 1;
}

} // namespace reprise::sim
