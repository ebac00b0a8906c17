// Test support: runs part of a test in a forked child and reports how it ended and what it printed.
#pragma once

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

namespace reprise::test {

/// How a child ended: its exit code or the signal that killed it, and its output.
struct ChildResult {
    bool exited = false;
    int exit_code = -1;
    bool signaled = false;
    int signal = 0;
    bool hung = false;   ///< killed by the watchdog (a safety net, not a measurement)
    std::string out;
    std::string err;

    bool died_by(int signo) const noexcept { return signaled && signal == signo; }
    bool exited_with(int code) const noexcept { return exited && exit_code == code; }
    /// For failure messages: "exit 2" or "signal 11 (Segmentation fault)", then stderr.
    std::string describe() const {
        std::string how = hung ? "hung (killed by the watchdog)"
                          : exited ? "exit " + std::to_string(exit_code)
                                   : "signal " + std::to_string(signal) + " (" + strsignal(signal) + ")";
        return how + "\n--- stdout ---\n" + out + "\n--- stderr ---\n" + err;
    }
};

/// Forks; the child runs `body` (an `int()` callable) with stdout and stderr sent
/// to pipes and leaves with `_exit(body())`, so no destructor or atexit handler of
/// the test process runs twice. The parent collects both streams and the status.
/// `watchdog` only stops a child that hangs; no result depends on it.
template <class Body>
ChildResult run_in_child(Body&& body, std::chrono::seconds watchdog = std::chrono::seconds(120)) {
    int out_pipe[2];
    int err_pipe[2];
    if (::pipe(out_pipe) != 0 || ::pipe(err_pipe) != 0) {
        std::perror("pipe");
        std::abort();
    }
    std::fflush(stdout);
    std::fflush(stderr);
    pid_t pid = ::fork();
    if (pid < 0) {
        std::perror("fork");
        std::abort();
    }
    if (pid == 0) {
        ::dup2(out_pipe[1], STDOUT_FILENO);
        ::dup2(err_pipe[1], STDERR_FILENO);
        ::close(out_pipe[0]);
        ::close(out_pipe[1]);
        ::close(err_pipe[0]);
        ::close(err_pipe[1]);
        int code = 99;
        try {
            code = body();
        } catch (const std::exception& e) {
            std::fprintf(stderr, "child: exception: %s\n", e.what());
        } catch (...) {
            std::fprintf(stderr, "child: unknown exception\n");
        }
        std::fflush(stdout);
        std::fflush(stderr);
        ::_exit(code);
    }
    ::close(out_pipe[1]);
    ::close(err_pipe[1]);

    ChildResult result;
    pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
    std::string* sinks[2] = {&result.out, &result.err};
    int open_streams = 2;
    const auto give_up = std::chrono::steady_clock::now() + watchdog;
    while (open_streams > 0) {
        if (std::chrono::steady_clock::now() > give_up) {
            ::kill(pid, SIGKILL);
            result.hung = true;
            break;
        }
        int n = ::poll(fds, 2, 1000);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            continue;
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || fds[i].revents == 0)
                continue;
            char buf[4096];
            ssize_t got = ::read(fds[i].fd, buf, sizeof buf);
            if (got > 0) {
                sinks[i]->append(buf, static_cast<std::size_t>(got));
            } else if (got == 0 || errno != EINTR) {
                ::close(fds[i].fd);
                fds[i].fd = -1;
                --open_streams;
            }
        }
    }
    for (auto& fd : fds)
        if (fd.fd >= 0)
            ::close(fd.fd);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!result.hung) {
        result.exited = WIFEXITED(status);
        result.exit_code = result.exited ? WEXITSTATUS(status) : -1;
        result.signaled = WIFSIGNALED(status);
        result.signal = result.signaled ? WTERMSIG(status) : 0;
    }
    return result;
}

} // namespace reprise::test
