// `reprise debug`: finds the program a trace (or a cluster's traces) recorded, then execs gdb on its replay with the extension loaded.
//
// The program comes from the trace header's identity (the resolved executable, else argv[0]
// against the recorded working directory) or --program; the extension from beside this tool
// (installed: <datadir>/reprise/gdb; in a build tree: the source's tools/gdb). The command is
// printed (--print-command) or exec'd, so that the terminal belongs to gdb alone.
#include "debug.hpp"

#include "decoders.hpp"
#include "elf_build_id.hpp"
#include "trace_files.hpp"

#include <reprise/record/trace.hpp>

#include <fmt/core.h>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>

// Where the gdb extension lives, configured by tools/meson.build.
#ifndef REPRISE_GDB_SOURCE_DIR
#define REPRISE_GDB_SOURCE_DIR ""   // the source tree's tools/gdb
#endif
#ifndef REPRISE_BUILD_TOOLS_DIR
#define REPRISE_BUILD_TOOLS_DIR ""  // the build tree's tools/ (where this tool is built)
#endif
#ifndef REPRISE_INSTALL_BINDIR
#define REPRISE_INSTALL_BINDIR ""   // <prefix>/<bindir>
#endif
#ifndef REPRISE_INSTALL_GDB_DIR
#define REPRISE_INSTALL_GDB_DIR ""  // <prefix>/<datadir>/reprise/gdb
#endif

namespace reprise::tool {

const char* const debug_help = R"(Usage: reprise debug [OPTIONS] TRACE...|DIR [-- GDB_ARGS...]

Starts gdb on a replay of the trace, with the project's gdb extension loaded: the tasks and
what each waits on (reprise tasks), a parked task's stack (reprise task ID, then bt), the
current event (reprise event), going to an event (reprise goto N), back (reprise back), to the
next event of a kind (reprise next KIND), until a connection's output holds a text
(reprise until-output TEXT), bookmarks and checkpoints. docs/debugging.md walks through them.

Several traces, or a folder (every trace in it, a segmented trace once), replay as one joint
session in one process: the nodes of a cluster, listed by `reprise nodes`.

The program is found from each trace's header: the executable it recorded (its resolved path),
when that still exists; else argv[0] resolved against the recorded working directory (a bare
name: on PATH). A simulator's trace (recorded inside reprise-raft-sim for the program
reprise-raft) names the program's binary beside the simulator or in a neighbouring folder (a
build tree's examples/raft/), else on PATH. --program names it instead. The tool says which
binary it runs and why, and notes when that binary's build id differs from the recording's
(another build: the replay may diverge). The traces of a joint session must name the same
program.

Options:
  --program PATH       the binary to run, instead of the one the traces name
  --break-at [NODE:]N  stop just before event N is delivered (events are numbered from 0, as
                       `reprise dump` shows them); a joint session needs NODE: a node's name, the
                       label of one of its runs (n3/2: the runs of a node recorded several times,
                       by start time), or its index, as the replay lists them. A NODE the traces do
                       not have (or a bare name of a node with several runs) is refused before gdb
                       starts, with the valid labels; an event past the trace's end is an error the
                       replay reports
  --extension FILE     the gdb extension to load (default: the one installed beside this tool,
                       <datadir>/reprise/gdb/reprise_gdb.py; in a build tree, the source's
                       tools/gdb/reprise_gdb.py)
  --gdb PATH           the debugger to run (default: gdb, looked up on PATH)
  --record-key FILE    the key of sealed traces (given to the program as well)
  --print-command      print the command instead of running it
  -- GDB_ARGS...       everything after -- goes to gdb, before --args: for instance
                       reprise debug t.trace -- -batch -ex run -ex 'reprise goto 100' -ex 'reprise tasks'
                       (`run` first: the replay then stops at its start)

The command run (the same line works by hand, docs/debugging.md):
  gdb -q -iex 'add-auto-load-safe-path EXTDIR' -x EXTDIR/reprise_gdb.py [GDB_ARGS...]
      --args PROGRAM --replay=TRACE [--replay=TRACE...] [--break-at=[NODE:]N] [--record-key=FILE]

Exit codes: gdb's own once it runs (the tool replaces itself with gdb); 0 with --print-command;
2 a bad command line (a --break-at NODE the traces do not have), a missing trace, or a trace whose
header cannot be read (damaged, or sealed and no --record-key); 3 what the session needs cannot be found: the program, gdb or the
extension.
)";

namespace {

namespace trace = reprise::trace;
namespace fs = std::filesystem;

constexpr int exit_ok = 0;
constexpr int exit_usage = 2;
constexpr int exit_missing = 3;

/// One trace of the session and the program its header names.
struct Node {
    std::string path;
    trace::Header header;
    std::string program;  ///< the binary found for it (empty with --program)
    std::string why;      ///< how it was found
};

int fail(int code, const std::string& message) {
    fmt::print(stderr, "reprise debug: {}\n", message);
    return code;
}

// Why `path` cannot be run as a program, or empty when it can.
std::string not_runnable(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0)
        return std::strerror(errno);
    if (!S_ISREG(st.st_mode))
        return "not a regular file";
    if (::access(path.c_str(), X_OK) != 0)
        return "not executable";
    return {};
}

// A bare name looked up on PATH, as execvp would; empty when not found.
std::string on_path(const std::string& name) {
    const char* path = std::getenv("PATH");  // reprise-allow: env (a command line tool, not a program on the runtime)
    std::string_view dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
    while (true) {
        const auto colon = dirs.find(':');
        std::string dir(dirs.substr(0, colon));
        const std::string candidate = (dir.empty() ? std::string(".") : dir) + "/" + name;
        if (not_runnable(candidate).empty())
            return candidate;
        if (colon == std::string_view::npos)
            return {};
        dirs.remove_prefix(colon + 1);
    }
}

// Whether the trace was recorded by a host of the program rather than the program's own binary:
// the recorded executable's name is not the program's (a simulator records its nodes this way).
bool hosted(const trace::Header& h) {
    return !h.executable.empty() && !h.program.empty() && fs::path(h.executable).filename() != h.program;
}

// The program a trace's header names: the recorded executable, else argv[0] resolved against the
// recorded working directory. Adds each place it looked at (and why it would not do) to `looked`.
bool find_program(Node& n, std::vector<std::string>& looked) {
    const trace::Header& h = n.header;
    if (hosted(h)) {
        // A simulator (reprise-raft-sim) records each node as its program (reprise-raft): the
        // program's binary is not the recording's. Look beside the host, then its neighbours
        // (a build tree: examples/sim/ beside examples/raft/).
        looked.push_back(fmt::format("{} (the recorded executable is not named as its program {}: a simulator "
                                     "hosting the program, or a renamed copy; --program names the binary)",
                                     shown(h.executable), shown(h.program)));
        const fs::path dir = fs::path(h.executable).parent_path();
        std::vector<fs::path> candidates{dir / h.program};
        std::error_code ec;
        std::vector<fs::path> neighbours;
        for (fs::directory_iterator it(dir.parent_path(), ec), end; !ec && it != end; it.increment(ec))
            if (it->is_directory(ec) && it->path() != dir)
                neighbours.push_back(it->path() / h.program);
        std::sort(neighbours.begin(), neighbours.end());
        candidates.insert(candidates.end(), neighbours.begin(), neighbours.end());
        for (const fs::path& c : candidates) {
            if (not_runnable(c.string()).empty()) {
                n.program = c.string();
                n.why = fmt::format("the program {} found near {}, which recorded it", shown(h.program),
                                    shown(h.executable));
                return true;
            }
        }
        looked.push_back(fmt::format("{} beside it and in its neighbouring folders (not found)", shown(h.program)));
    } else if (!h.executable.empty()) {
        if (const std::string no = not_runnable(h.executable); no.empty()) {
            n.program = h.executable;
            n.why = "the executable the trace recorded";
            return true;
        } else {
            looked.push_back(fmt::format("{} (the recorded executable: {})", shown(h.executable), no));
        }
    }
    const std::string argv0 = h.argv.empty() ? std::string() : h.argv[0];
    if (argv0.empty()) {
        looked.emplace_back("argv[0] (the trace records none)");
        return false;
    }
    if (argv0.find('/') == std::string::npos) {
        if (std::string found = on_path(argv0); !found.empty()) {
            n.program = found;
            n.why = fmt::format("argv[0] {} found on PATH", shown(argv0));
            return true;
        }
        looked.push_back(fmt::format("{} on PATH (argv[0]: not found)", shown(argv0)));
        return false;
    }
    fs::path p(argv0);
    if (p.is_relative()) {
        if (h.working_directory.empty()) {
            looked.push_back(fmt::format("{} (argv[0]: relative, and the trace records no working directory)",
                                         shown(argv0)));
            return false;
        }
        p = fs::path(h.working_directory) / p;
    }
    const std::string candidate = p.lexically_normal().string();
    if (const std::string no = not_runnable(candidate); !no.empty()) {
        looked.push_back(fmt::format("{} (argv[0]{}: {})", shown(candidate),
                                     fs::path(argv0).is_relative() ? " resolved against the recorded working directory"
                                                                   : "",
                                     no));
        return false;
    }
    n.program = candidate;
    n.why = fs::path(argv0).is_relative()
                ? fmt::format("argv[0] {} resolved against the recorded working directory {}", shown(argv0),
                              shown(h.working_directory))
                : fmt::format("argv[0] {}", shown(argv0));
    return true;
}

std::string canonical_or_same(const std::string& path) {
    std::error_code ec;
    auto c = fs::canonical(path, ec);
    return ec ? path : c.string();
}

// The directory of this tool's own executable (empty when unknown).
fs::path own_directory() {
    char buf[PATH_MAX];
    const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0)
        return {};
    return fs::path(std::string(buf, static_cast<std::size_t>(n))).parent_path();
}

// The extension's candidates, most specific first: a build tree's source folder, an installed
// tree relocated as a whole (the same path from bindir to datadir), the configured install path.
std::vector<fs::path> extension_candidates() {
    std::vector<fs::path> out;
    const fs::path self = own_directory();
    const std::string build_tools = REPRISE_BUILD_TOOLS_DIR;
    if (!self.empty() && !build_tools.empty() && canonical_or_same(self.string()) == canonical_or_same(build_tools) &&
        std::string(REPRISE_GDB_SOURCE_DIR).size() > 0)
        out.push_back(fs::path(REPRISE_GDB_SOURCE_DIR) / "reprise_gdb.py");
    const std::string bindir = REPRISE_INSTALL_BINDIR;
    const std::string gdbdir = REPRISE_INSTALL_GDB_DIR;
    if (!self.empty() && !bindir.empty() && !gdbdir.empty()) {
        const fs::path relative = fs::path(gdbdir).lexically_relative(bindir);
        if (!relative.empty())
            out.push_back((self / relative / "reprise_gdb.py").lexically_normal());
    }
    if (!gdbdir.empty())
        out.push_back(fs::path(gdbdir) / "reprise_gdb.py");
    std::vector<fs::path> unique;
    for (const fs::path& p : out)
        if (std::find(unique.begin(), unique.end(), p) == unique.end())
            unique.push_back(p);
    return unique;
}

// A word for a POSIX shell: as is when it is safe, else in single quotes.
std::string quoted(const std::string& word) {
    const bool safe = !word.empty() && word.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                              "0123456789_./:=@%+,-") == std::string::npos;
    if (safe)
        return word;
    std::string out = "'";
    for (char c : word)
        out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

// The traces named on the command line: folders expanded, each trace once.
bool collect(const DebugRequest& rq, std::vector<std::string>& paths, int& code) {
    for (const std::string& in : rq.inputs) {
        std::error_code ec;
        if (fs::is_directory(in, ec)) {
            std::string why;
            auto found = traces_in(in, why);
            if (!why.empty()) {
                code = fail(exit_usage, why);
                return false;
            }
            if (found.empty()) {
                code = fail(exit_usage, fmt::format("no trace in the folder {}", shown(in)));
                return false;
            }
            paths.insert(paths.end(), found.begin(), found.end());
        } else if (fs::exists(in, ec) || fs::exists(in + ".0", ec)) {
            paths.push_back(in);
        } else {
            code = fail(exit_usage, fmt::format("no trace at {} (nor a segmented one, {}.0)", shown(in), shown(in)));
            return false;
        }
    }
    std::set<std::string> seen;
    std::vector<std::string> unique;
    for (const std::string& p : paths) {
        std::error_code ec;
        const auto canonical = fs::weakly_canonical(p, ec);
        if (seen.insert(ec ? p : canonical.string()).second)
            unique.push_back(p);
    }
    paths = std::move(unique);
    return true;
}

// Reads a trace's header; a sealed trace needs its key (checked by opening it).
bool read_node(const DebugRequest& rq, Node& n, int& code) {
    std::string why;
    auto h = trace::Reader::read_header(n.path, &why);
    if (!h.ok()) {
        code = fail(exit_usage, fmt::format("cannot read the trace's header: {}", why));
        return false;
    }
    n.header = *h;
    if (n.header.encrypted) {
        if (rq.key == nullptr) {
            code = fail(exit_usage, fmt::format("{} is sealed: give its key with --record-key FILE", shown(n.path)));
            return false;
        }
        auto r = trace::Reader::open(n.path, &why, rq.key);
        if (!r.ok()) {
            code = fail(exit_usage, why);
            return false;
        }
    }
    return true;
}

// --break-at=[NODE:]N, checked before gdb starts: its form, and NODE against the traces' headers,
// matched as the replay matches it (a node's name, the label of one of its runs, n3/2, or an
// index in the replay's order). A joint session needs a NODE; events are numbered from 0, and
// event 0 cannot be stopped before.
bool break_at_argument(const std::string& text, const std::vector<Node>& nodes, std::string& out, int& code) {
    const std::size_t traces = nodes.size();
    const auto colon = text.rfind(':');
    const std::string node = colon == std::string::npos ? std::string() : text.substr(0, colon);
    const std::string number = colon == std::string::npos ? text : text.substr(colon + 1);
    std::uint64_t n = 0;
    auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), n);
    if (number.empty() || ec != std::errc{} || end != number.data() + number.size() ||
        (colon != std::string::npos && node.empty())) {
        code = fail(exit_usage, fmt::format("--break-at needs an event number N or NODE:N, not {}", shown(text)));
        return false;
    }
    if (n == 0) {
        code = fail(exit_usage, fmt::format("--break-at {}: event 0 is where every replay under gdb stops anyway (at "
                                            "`run`, before any event); give N from 1",
                                            shown(text)));
        return false;
    }
    if (traces > 1 && node.empty()) {
        code = fail(exit_usage, fmt::format("--break-at {}: a joint session of {} traces needs NODE:N (a node's name, "
                                            "or the label of one of its runs: n3/2)",
                                            shown(text), traces));
        return false;
    }
    if (!node.empty()) {
        std::vector<JointTrace> labelled;
        for (const Node& n : nodes)
            labelled.push_back(JointTrace{n.path, n.header.node, n.header.start_wall_ns, {}});
        std::string why;
        if (!find_joint_node(joint_labels(std::move(labelled)), node, why)) {
            code = fail(exit_usage, fmt::format("--break-at {}: {}", shown(text), why));
            return false;
        }
    }
    out = "--break-at=" + text;
    return true;
}

} // namespace

int debug_main(const DebugRequest& rq) {
    int code = exit_ok;
    std::vector<std::string> paths;
    if (!collect(rq, paths, code))
        return code;
    std::vector<Node> nodes;
    for (const std::string& p : paths) {
        nodes.push_back(Node{p, {}, {}, {}});
        if (!read_node(rq, nodes.back(), code))
            return code;
    }
    // One process runs one program: the traces must agree on it.
    std::map<std::string, std::vector<std::string>> by_program;
    for (const Node& n : nodes)
        by_program[n.header.program].push_back(fs::path(n.path).filename().string());
    if (by_program.size() > 1) {
        std::string list;
        for (const auto& [program, names] : by_program) {
            std::string files;
            for (std::size_t i = 0; i < names.size() && i < 3; ++i)
                files += (i == 0 ? "" : ", ") + shown(names[i]);
            if (names.size() > 3)
                files += fmt::format(" and {} more", names.size() - 3);
            list += fmt::format("{}{} ({})", list.empty() ? "" : "; ", program.empty() ? "(unnamed)" : shown(program),
                                files);
        }
        return fail(exit_usage, fmt::format("the traces were recorded by different programs: {}; a joint session "
                                            "replays one program's nodes: name their traces",
                                            list));
    }

    std::string program;
    if (rq.program) {
        if (const std::string no = not_runnable(*rq.program); !no.empty())
            return fail(exit_missing, fmt::format("--program {}: {}", shown(*rq.program), no));
        program = *rq.program;
        fmt::print(stderr, "reprise debug: program {} (given with --program)\n", shown(program));
    } else {
        for (Node& n : nodes) {
            std::vector<std::string> looked;
            if (!find_program(n, looked)) {
                std::string where;
                for (const std::string& l : looked)
                    where += (where.empty() ? "" : "; ") + l;
                return fail(exit_missing, fmt::format("cannot find the program that recorded {}: looked at {}; give it "
                                                      "with --program PATH",
                                                      shown(n.path), where));
            }
            if (canonical_or_same(n.program) != canonical_or_same(nodes.front().program))
                return fail(exit_usage,
                            fmt::format("the traces name different binaries: {} for {}, {} for {}: a joint session runs "
                                        "one; give it with --program PATH",
                                        shown(nodes.front().program), shown(nodes.front().path), shown(n.program),
                                        shown(n.path)));
        }
        program = nodes.front().program;
        fmt::print(stderr, "reprise debug: program {} ({})\n", shown(program), nodes.front().why);
    }
    {
        std::string id, why;
        if (!elf_build_id(program, id, why)) {
            fmt::print(stderr, "reprise debug: note: cannot read the program's build id: {}\n", why);
        } else {
            std::set<std::string> noted;
            for (const Node& n : nodes) {
                const std::string& recorded = n.header.build_id;
                if (recorded.empty() || id == recorded || !noted.insert(recorded).second)
                    continue;
                if (hosted(n.header)) {
                    fmt::print(stderr,
                               "reprise debug: note: {} was recorded inside {} (build id {}): build ids are not "
                               "compared\n",
                               shown(n.path), shown(n.header.executable), shown(recorded));
                    continue;
                }
                fmt::print(stderr,
                           "reprise debug: note: {} is another build than the one that recorded {} (build id {}, "
                           "recorded {}): the replay may diverge\n",
                           shown(program), shown(n.path), id.empty() ? std::string("none") : id, shown(recorded));
            }
        }
    }

    fs::path extension;
    if (rq.extension) {
        std::error_code ec;
        if (!fs::is_regular_file(*rq.extension, ec))
            return fail(exit_missing, fmt::format("--extension {}: {}", shown(*rq.extension),
                                                  ec ? ec.message() : std::string("not a file")));
        extension = *rq.extension;
    } else {
        std::string looked;
        for (const fs::path& p : extension_candidates()) {
            std::error_code ec;
            if (fs::is_regular_file(p, ec)) {
                extension = p;
                break;
            }
            looked += (looked.empty() ? "" : ", ") + p.string();
        }
        if (extension.empty())
            return fail(exit_missing, fmt::format("the gdb extension reprise_gdb.py is not where this tool looks ({}): "
                                                  "give it with --extension FILE",
                                                  looked.empty() ? std::string("no place configured") : looked));
    }
    std::error_code ec;
    const fs::path extension_dir = fs::absolute(extension, ec).parent_path();

    std::string gdb = rq.gdb;
    const bool gdb_named = gdb.find('/') == std::string::npos;
    const std::string gdb_path = gdb_named ? on_path(gdb) : (not_runnable(gdb).empty() ? gdb : std::string());
    if (gdb_path.empty() && !rq.print_command)
        return fail(exit_missing, gdb_named ? fmt::format("{} is not on PATH: install the package gdb (apt-get install "
                                                          "gdb; ./dev installs it), or give --gdb PATH",
                                                          shown(gdb))
                                            : fmt::format("--gdb {}: {}", shown(gdb), not_runnable(gdb)));

    std::vector<std::string> argv = {gdb, "-q", "-iex", "add-auto-load-safe-path " + extension_dir.string(), "-x",
                                     fs::absolute(extension, ec).lexically_normal().string()};
    argv.insert(argv.end(), rq.gdb_args.begin(), rq.gdb_args.end());
    argv.emplace_back("--args");
    argv.push_back(program);
    // Absolute paths: gdb's `cd` (or a program that changes directory) leaves them valid.
    auto absolute = [](const std::string& p) {
        std::error_code ec;
        const fs::path a = fs::absolute(p, ec);
        return ec ? p : a.lexically_normal().string();
    };
    for (const Node& n : nodes)
        argv.push_back("--replay=" + absolute(n.path));
    if (rq.break_at) {
        std::string arg;
        if (!break_at_argument(*rq.break_at, nodes, arg, code))
            return code;
        argv.push_back(arg);
    }
    if (rq.key_path)
        argv.push_back("--record-key=" + absolute(*rq.key_path));

    if (rq.print_command) {
        std::string line;
        for (const std::string& a : argv)
            line += (line.empty() ? "" : " ") + quoted(a);
        fmt::print("{}\n", line);
        return exit_ok;
    }
    std::vector<char*> cargv;
    for (std::string& a : argv)
        cargv.push_back(a.data());
    cargv.push_back(nullptr);
    std::fflush(stdout);
    std::fflush(stderr);
    ::execv(gdb_path.c_str(), cargv.data());
    return fail(exit_missing, fmt::format("cannot run {}: {}", gdb_path, std::strerror(errno)));
}

} // namespace reprise::tool
