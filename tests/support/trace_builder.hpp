// TraceBuilder: trace files built with the real writer's pieces (trace::Encoder, encode_header,
// ChunkSealer), for the programs that write test traces (fuzz seeds, cluster scenarios).
#pragma once

#include <reprise/record/chunk.hpp>
#include <reprise/record/trace.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace reprise::test {

/// A trace file as a recorder writes it: the header, then each chunk the encoder's payload is sealed into.
class TraceBuilder {
public:
    /// With a key the header says "encrypted" and every chunk is sealed with it.
    TraceBuilder(trace::Header h, const trace::TraceKey* key)
        : header_(marked(std::move(h), key)),
          file_(trace::encode_header(header_)),
          sealer_(trace::encode_header_body(header_), key) {
        encoder_.set_base(header_.start_mono_ns, header_.start_wall_ns);
    }

    const trace::Header& header() const noexcept { return header_; }
    void put(const trace::Record& r) { encoder_.put(r); }

    /// Seals the records put since the last chunk (the writer thread's path).
    void seal(bool compress) {
        sealer_.seal(encoder_.payload(), index_++, compress, file_);
        encoder_.payload().clear();
    }

    /// Seals the records put since the last chunk as the crash path does: in place, uncompressed,
    /// written as frame, nonce (when encrypted), payload, tag (when encrypted).
    void seal_in_place() {
        std::string& payload = encoder_.payload();
        trace::SealedInPlace sealed;
        if (!sealer_.seal_in_place(payload.data(), payload.size(), index_++, sealed))
            fail("seal_in_place refused a payload of " + std::to_string(payload.size()) + " bytes");
        file_.append(sealed.frame, sizeof sealed.frame);
        if (sealed.encrypted)
            file_.append(reinterpret_cast<const char*>(sealed.nonce), sizeof sealed.nonce);
        file_ += payload;
        if (sealed.encrypted)
            file_.append(reinterpret_cast<const char*>(sealed.tag), sizeof sealed.tag);
        payload.clear();
    }

    /// The file so far (every sealed chunk; records put since are not in it).
    std::string& file() noexcept { return file_; }

    static trace::Header marked(trace::Header h, const trace::TraceKey* key) {
        h.encrypted = key != nullptr;
        return h;
    }

    [[noreturn]] static void fail(const std::string& why) {
        std::fprintf(stderr, "trace builder: %s\n", why.c_str());
        std::exit(1);
    }

private:
    trace::Header header_;
    std::string file_;
    trace::ChunkSealer sealer_;
    trace::Encoder encoder_;
    std::uint64_t index_ = 0;
};

} // namespace reprise::test
