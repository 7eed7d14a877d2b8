// Connection over plain TCP and TLS (definitions: connection_impl.hpp).
#include "net/connection_impl.hpp"

namespace petrel::net {

template class Connection<TcpStream>;
template class Connection<TlsStream>;

}  // namespace petrel::net
