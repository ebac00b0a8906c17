// Authenticated peer links: the handshake and the per-frame MACs (libsodium's HMAC-SHA256).
#include "peer_auth.hpp"

#include <sodium.h>

#include <cstring>

namespace reprise::raft {

namespace {

std::string_view as_view(const std::array<unsigned char, LinkAuth::tag_bytes>& t) {
    return {reinterpret_cast<const char*>(t.data()), t.size()};
}

bool same(std::string_view a, std::string_view b) {
    return a.size() == LinkAuth::tag_bytes && b.size() == LinkAuth::tag_bytes &&
           crypto_verify_32(reinterpret_cast<const unsigned char*>(a.data()),
                            reinterpret_cast<const unsigned char*>(b.data())) == 0;
}

} // namespace

LinkAuth::Tag LinkAuth::mac(std::string_view key, std::string_view label, std::string_view a, std::string_view b) {
    static_assert(tag_bytes == crypto_auth_hmacsha256_BYTES);
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, reinterpret_cast<const unsigned char*>(key.data()), key.size());
    for (std::string_view part : {label, a, b})
        crypto_auth_hmacsha256_update(&st, reinterpret_cast<const unsigned char*>(part.data()), part.size());
    Tag out;
    crypto_auth_hmacsha256_final(&st, out.data());
    return out;
}

LinkAuth::Tag LinkAuth::frame_tag(char direction, std::uint64_t counter, std::string_view frame) const {
    char header[9];
    header[0] = direction;
    for (int i = 0; i < 8; ++i)
        header[1 + i] = static_cast<char>((counter >> (8 * i)) & 0xff);
    return mac(key_, std::string_view(header, sizeof header), frame, {});
}

bool LinkAuth::accept(Connection& conn, std::string_view secret, Deadline deadline, LinkAuth& out, std::string& why) {
    auto server_nonce = secure_random(nonce_bytes);
    if (!server_nonce.ok()) {
        why = "no random nonce";
        return false;
    }
    if (!conn.write(std::string(challenge_magic) + *server_nonce, deadline).ok()) {
        why = "the challenge could not be sent";
        return false;
    }
    auto answer = conn.read_exact(nonce_bytes + tag_bytes, deadline);
    if (!answer.ok()) {
        why = fmt::format("no answer to the challenge ({})", answer.error().message());
        return false;
    }
    const std::string_view client_nonce = std::string_view(*answer).substr(0, nonce_bytes);
    const std::string_view proof = std::string_view(*answer).substr(nonce_bytes);
    if (!same(proof, as_view(mac(secret, "reprise-raft client", *server_nonce, client_nonce)))) {
        why = "it did not prove the cluster secret";
        return false;
    }
    if (!conn.write(as_view(mac(secret, "reprise-raft server", client_nonce, *server_nonce)), deadline).ok()) {
        why = "the proof could not be sent";
        return false;
    }
    out.key_ = std::string(as_view(mac(secret, "reprise-raft link", *server_nonce, client_nonce)));
    out.send_direction_ = 's';
    out.sent_ = out.received_ = 0;
    return true;
}

bool LinkAuth::open(Connection& conn, std::string_view secret, Deadline deadline, LinkAuth& out, std::string& why) {
    auto challenge = conn.read_exact(challenge_magic.size() + nonce_bytes, deadline);
    if (!challenge.ok()) {
        why = fmt::format("no challenge ({}): does the peer run with the cluster secret?", challenge.error().message());
        return false;
    }
    if (std::string_view(*challenge).substr(0, challenge_magic.size()) != challenge_magic) {
        why = "the peer sent no challenge: does it run with the cluster secret?";
        return false;
    }
    const std::string server_nonce = challenge->substr(challenge_magic.size());
    auto client_nonce = secure_random(nonce_bytes);
    if (!client_nonce.ok()) {
        why = "no random nonce";
        return false;
    }
    const std::string answer =
        *client_nonce + std::string(as_view(mac(secret, "reprise-raft client", server_nonce, *client_nonce)));
    if (!conn.write(answer, deadline).ok()) {
        why = "the answer could not be sent";
        return false;
    }
    auto proof = conn.read_exact(tag_bytes, deadline);
    if (!proof.ok()) {
        why = fmt::format("the peer refused the link or sent no proof ({}): is its cluster secret the same?",
                          proof.error().message());
        return false;
    }
    if (!same(*proof, as_view(mac(secret, "reprise-raft server", *client_nonce, server_nonce)))) {
        why = "the peer did not prove the cluster secret";
        return false;
    }
    out.key_ = std::string(as_view(mac(secret, "reprise-raft link", server_nonce, *client_nonce)));
    out.send_direction_ = 'c';
    out.sent_ = out.received_ = 0;
    return true;
}

std::string LinkAuth::seal(std::string_view frame) {
    return std::string(as_view(frame_tag(send_direction_, sent_++, frame)));
}

bool LinkAuth::verify(std::string_view frame, std::string_view tag) {
    const char direction = send_direction_ == 'c' ? 's' : 'c';
    return same(tag, as_view(frame_tag(direction, received_++, frame)));
}

} // namespace reprise::raft
