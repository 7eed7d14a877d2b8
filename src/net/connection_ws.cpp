// Connection over WebSocket and WebSocket over TLS (definitions:
// connection_impl.hpp).
#include "net/connection_impl.hpp"

namespace petrel::net {

template class Connection<WsStream>;
template class Connection<WssStream>;

}  // namespace petrel::net
