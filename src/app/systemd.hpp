// systemd's notification protocol (sd_notify(3)), for `Type=notify` units
// (packaging/petrel.service): a datagram of "KEY=VALUE" lines sent to the
// AF_UNIX socket named by $NOTIFY_SOCKET ('@' for the abstract namespace).
// Written here rather than linked from libsystemd: it is a dozen lines,
// and a petrel without systemd needs nothing of it.
//
// petrel sends READY=1 once /ready would answer 200 (every listener
// accepting, the store writable, the loops running), WATCHDOG=1 every half
// WatchdogSec when every event loop has answered a ping, and STOPPING=1
// when it begins to shut down.
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

namespace petrel::app::systemd {

// Whether $NOTIFY_SOCKET is set.
bool notify_socket_set();
// Sends `state`; false if there is no socket or sending failed.
bool notify(std::string_view state);
// The watchdog interval ($WATCHDOG_USEC, for this process by
// $WATCHDOG_PID if set), if the service manager expects pings.
std::optional<std::chrono::microseconds> watchdog_interval();

}  // namespace petrel::app::systemd
