// A probe into RAFT nodes for checkers that look at a whole cluster (the simulator's safety checker).
#pragma once

#include "message.hpp"

#include <cstdint>

namespace reprise::raft {

class Node;

/// What every node of this process reports as its RAFT state changes. Nobody observes
/// in a real process (the default, one branch per call); the simulator installs one to
/// check election safety, log matching, leader completeness and state machine safety
/// across a cluster's nodes, which it runs in one thread. Calls come from inside the node
/// (under its lock), so an observer only reads what it is given and never blocks.
class Observer {
public:
    virtual ~Observer() = default;
    /// The node recovered its state from disk and is about to serve.
    virtual void started(const Node& /*node*/) {}
    /// The node object is going away (its process ended or crashed).
    virtual void stopped(const Node& /*node*/) {}
    /// The node became leader of its current term (its log, the term's no-op included, is final here).
    virtual void became_leader(const Node& /*node*/) {}
    /// The node applied log entry `index` to its state machine.
    virtual void applied(const Node& /*node*/, std::uint64_t /*index*/, const Entry& /*entry*/) {}
};

/// Installs the observer of every node in this process (null: none). Not thread-safe: set it
/// before any node starts.
void set_observer(Observer* observer) noexcept;
Observer* observer() noexcept;

} // namespace reprise::raft
