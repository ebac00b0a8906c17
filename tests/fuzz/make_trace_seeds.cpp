// Writes seed traces for the trace fuzzer that hold every record kind the echo demo never records.
//
// Usage: make_trace_seeds DIR. The traces are built with the real encoder (trace::Encoder,
// encode_header, frame_chunk), so they are what a recorder writes: every wake-up kind,
// every input kind, full and digest-only outputs, several chunks, deltas of both signs.
#include "seed_file.hpp"
#include <reprise/io/address.hpp>
#include <reprise/record/trace.hpp>

#include <cstdio>
#include <fstream>
#include <string>

using namespace reprise;

namespace {

void write(const std::string& path, const std::string& bytes) { fuzz::write_seed("make_trace_seeds", path, bytes); }

trace::Header header(const char* node) {
    return trace::Header{.node = node,
                         .argv = {"seed-program", "--flag", "value"},
                         .seed = 0x1234'5678'9abc'def0ULL,
                         .start_mono_ns = 1'000'000'000,
                         .start_wall_ns = 1'700'000'000'000'000'000,
                         .runtime_version = "0.1.0",
                         .build_id = "00112233445566778899aabbccddeeff00112233"};
}

// Every kind of record, in two chunks, ending with the end record.
std::string every_record() {
    trace::Header h = header("seeds");
    trace::Encoder e;
    e.set_base(h.start_mono_ns, h.start_wall_ns);
    std::string file = trace::encode_header(h);
    Address peer = *Address::parse("127.0.0.1:40000");
    Address local = *Address::parse("127.0.0.1:7000");
    Address peer6 = *Address::parse("[::1]:40001");

    e.tick(h.start_mono_ns, h.start_wall_ns);
    e.spawn(1, "main");
    e.input(trace::InputKind::listen, "", local.to_string());
    e.input(trace::InputKind::env, "HOME", "/root");
    e.input(trace::InputKind::secure_random, "", std::string("\x01\x02\x03\x04\x05\x06\x07\x08", 8));
    e.input(trace::InputKind::app, "config", "{\"x\":1}");
    e.input(trace::InputKind::precise_clock, "", "\x10\x20\x30\x40\x50\x60\x70\x00");
    e.spawn(2, "server");
    e.input(trace::InputKind::connect, "", "");
    e.tick(h.start_mono_ns + 1'000, h.start_wall_ns + 1'000);
    e.wake(5, 3, 9, {}, &peer, &local);         // accepted
    e.wake(6, 4, 0, {}, &local, &peer6);        // connected
    e.wake(2, 4, 0, "PING\r\n", nullptr, nullptr);  // bytes read
    e.output(trace::OutputKind::conn_write, 4, 7, trace::digest64("+PONG\r\n"), "+PONG\r\n");
    e.output(trace::OutputKind::conn_write, 4, 3, trace::digest64("abc"), {});
    std::string chunk1 = e.payload();
    e.payload().clear();
    file += trace::frame_chunk(chunk1);

    e.tick(h.start_mono_ns + 30'000'000'000, h.start_wall_ns + 29'000'000'000);  // wall went back 1 s
    e.wake(1, 7, 0, {}, nullptr, nullptr);      // timer fired
    e.wake(7, 4, 0, {}, nullptr, nullptr);      // drained
    e.wake(8, 0, 15, {}, nullptr, nullptr);     // signal
    e.wake(9, 8, 0, std::string("\x00\x01result", 8), nullptr, nullptr);  // offload done
    e.wake(3, 4, 0, {}, nullptr, nullptr);      // eof
    e.wake(4, 5, 104, {}, nullptr, nullptr);    // io error (ECONNRESET)
    e.output(trace::OutputKind::exit, 0, 0, 0, {});
    e.end(0);
    file += trace::frame_chunk(e.payload());
    return file;
}

// A trace cut off by a crash: no end record, the last chunk half written.
std::string cut_off() {
    trace::Header h = header("crashed");
    trace::Encoder e;
    e.set_base(h.start_mono_ns, h.start_wall_ns);
    std::string file = trace::encode_header(h);
    e.tick(h.start_mono_ns, h.start_wall_ns);
    e.spawn(1, "main");
    file += trace::frame_chunk(e.payload());
    e.payload().clear();
    e.tick(h.start_mono_ns + 5, h.start_wall_ns + 5);
    e.wake(1, 2, 0, {}, nullptr, nullptr);
    std::string last = trace::frame_chunk(e.payload());
    file += last.substr(0, last.size() / 2);
    return file;
}

// Segment 1 of a segmented trace opened on its own (the reader refuses it).
std::string later_segment() {
    trace::Header h = header("segmented");
    h.segment = 1;
    return trace::encode_header(h);
}

} // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    const std::string dir = argv[1];
    write(dir + "/every-record.trace", every_record());
    write(dir + "/cut-off.trace", cut_off());
    write(dir + "/later-segment.trace", later_segment());
    return 0;
}
