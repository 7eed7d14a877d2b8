// The socket and timer types of petrel's event loops. They name the loop's
// own executor (io_context::executor_type) rather than Asio's default
// type-erased any_io_executor: every connection holds a socket and a timer,
// and the type-erased executor makes each of them ~40 bytes larger and every
// operation go through an indirection.
#pragma once

#include <boost/asio/basic_stream_socket.hpp>
#include <boost/asio/basic_waitable_timer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>

namespace petrel::net {

using LoopExecutor = boost::asio::io_context::executor_type;
using Socket = boost::asio::basic_stream_socket<boost::asio::ip::tcp, LoopExecutor>;
using LoopTimer = boost::asio::basic_waitable_timer<std::chrono::steady_clock,
                                                    boost::asio::wait_traits<std::chrono::steady_clock>, LoopExecutor>;

}  // namespace petrel::net
