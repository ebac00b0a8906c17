// printers_program: holds one value of each public type the gdb pretty-printers show, then stops in printers_here() for gdb.
//
// tests/tools/printers_test.py runs it under gdb (batch), breaks in printers_here(), goes up one
// frame and prints the locals with tools/gdb/reprise_printers.py loaded. It connects to itself
// over loopback so that a live Connection and Listener are in scope.
#include <reprise/runtime/reprise.hpp>

#include <fmt/core.h>

#include <cerrno>
#include <cstdio>
#include <string>

using namespace std::chrono_literals;
using namespace reprise;

// Where gdb stops: the caller's frame holds the values. noinline and the empty asm keep the call.
extern "C" __attribute__((noinline, used)) void printers_here(const void* anchor) {
    asm volatile("" : : "r"(anchor) : "memory");
}

int main(int argc, char** argv) {
    return run_main(
        argc, argv,
        [](MainContext&) -> int {
            Result<int> ok_int = 42;
            Result<int> timed_out = Errc::timed_out;
            Result<std::string> ok_text = std::string("hello");
            Result<void> ok_void;
            Result<void> reset = Error{Errc::reset, ECONNRESET};
            Error denied{Errc::io, EACCES};
            Address v4 = Address::parse("127.0.0.1:6379").value();
            Address v6 = Address::parse("[::1]:80").value();
            Address nowhere;
            Duration short_wait = 1500ms;
            Duration tiny = 250ns;
            Instant started = now();
            Deadline never = Deadline::never();
            Deadline soon = Deadline(started + 3s);

            auto listener = listen(Address::loopback(0));
            if (!listener.ok()) {
                fmt::print(stderr, "printers_program: listen: {}\n", listener.error().message());
                return 1;
            }
            const Address to = Address::loopback(listener->port());
            auto dialer = spawn("dialer", [to]() -> Result<Connection> { return connect(to); });
            auto accepted = listener->accept();
            auto dialed = dialer.join();
            if (!accepted.ok() || !dialed.ok()) {
                fmt::print(stderr, "printers_program: the loopback connection failed\n");
                return 1;
            }
            Connection& server_side = *accepted;
            Connection none;
            auto answer = spawn("answer", []() -> int { return 7; });
            auto sleeper = spawn("sleeper", []() { (void)sleep_for(1h); });
            Task<int> empty_task;
            (void)sleep_for(1ms);  // answer finishes, sleeper parks

            printers_here(&ok_int);
            fmt::print("printers_program: {} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {}\n", ok_int.ok(), timed_out.ok(),
                       ok_text.ok(), ok_void.ok(), reset.ok(), denied.message(), v4.to_string(), v6.to_string(),
                       nowhere.empty(), short_wait.count(), tiny.count(), never.is_never(), soon.at_ns() > 0,
                       server_side.id(), static_cast<bool>(none), static_cast<bool>(empty_task));
            sleeper.cancel();
            (void)sleeper.join();
            (void)answer.join();
            return 0;
        },
        ProgramInfo{"printers_program"});
}
