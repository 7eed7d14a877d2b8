// bridge::Bridges: every configured bridge of the process, on one event
// loop. Built after the store is restored and before the broker serves:
// construction registers each bridge's session policy with the broker and
// deletes the sessions of bridges no longer configured (their queues cannot
// go anywhere); start() attaches their sessions and begins connecting.
// Also the bridges' $SYS topics ($SYS/broker/bridge/<name>/...).
#pragma once

#include <boost/asio/io_context.hpp>
#include <memory>
#include <vector>

#include "bridge/bridge.hpp"

namespace petrel::bridge {

class Bridges {
 public:
  Bridges(const std::vector<BridgeSettings>& settings, broker::Broker& broker, boost::asio::io_context& loop);
  void start();
  std::vector<Status> status() const;
  // $SYS/broker/bridge/<name>/{connected,state,queued,inflight,forwarded,received,dropped,refused,resent,connects,last_error}
  void publish_sys(const broker::Broker::SysPut& put) const;
  bool empty() const { return bridges_.empty(); }

 private:
  std::vector<std::shared_ptr<Bridge>> bridges_;
};

}  // namespace petrel::bridge
