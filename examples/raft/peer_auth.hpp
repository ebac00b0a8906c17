// Authenticated peer links: a challenge/response on the cluster secret when a link opens, then a MAC on every frame.
#pragma once

#include <reprise/runtime/reprise.hpp>

#include <fmt/core.h>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace reprise::raft {

/// One open link's authentication (both ends hold one). The node that accepted the link sends
/// a challenge ("RPRSAUTH" and a 32-byte nonce); the connecting node answers with its own nonce
/// and HMAC-SHA256(secret, "reprise-raft client" || server nonce || client nonce); the accepting
/// node answers with HMAC-SHA256(secret, "reprise-raft server" || client nonce || server nonce),
/// so both ends prove the secret without sending it. Nonces come from secure_random() (a
/// recorded input). The link's key is HMAC-SHA256(secret, "reprise-raft link" || nonces), and
/// each frame after is followed by HMAC-SHA256(key, direction || counter || frame): a frame
/// replayed, reordered, cut or sent back the other way fails its check and ends the link.
class LinkAuth {
public:
    static constexpr std::size_t nonce_bytes = 32;
    static constexpr std::size_t tag_bytes = 32;
    static constexpr std::string_view challenge_magic = "RPRSAUTH";

    /// Accepting end: challenges the peer. False (with `why`) when it does not prove the secret.
    static bool accept(Connection& conn, std::string_view secret, Deadline deadline, LinkAuth& out, std::string& why);
    /// Connecting end: answers the challenge and checks the accepting end's proof.
    static bool open(Connection& conn, std::string_view secret, Deadline deadline, LinkAuth& out, std::string& why);

    /// The tag that follows the next frame this end sends (counts it).
    std::string seal(std::string_view frame);
    /// True when `tag` is the peer's tag for its next frame (counts it).
    bool verify(std::string_view frame, std::string_view tag);

private:
    using Tag = std::array<unsigned char, tag_bytes>;
    static Tag mac(std::string_view key, std::string_view label, std::string_view a, std::string_view b);
    Tag frame_tag(char direction, std::uint64_t counter, std::string_view frame) const;

    std::string key_;
    char send_direction_ = 'c';
    std::uint64_t sent_ = 0;
    std::uint64_t received_ = 0;
};

} // namespace reprise::raft
