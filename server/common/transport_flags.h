// The --tls_* / --plaintext flags both servers share (with environment
// fallbacks), so the two binaries are configured the same way.
#ifndef TELEMETRY_SERVER_COMMON_TRANSPORT_FLAGS_H_
#define TELEMETRY_SERVER_COMMON_TRANSPORT_FLAGS_H_

#include "server/common/transport_security.h"

namespace telemetry {

// --tls_cert (TLS_CERT_FILE), --tls_key (TLS_KEY_FILE), --tls_client_ca
// (TLS_CLIENT_CA_FILE), --plaintext (PLAINTEXT=1).
ServerTransportSecurity TransportSecurityFromFlags();

}  // namespace telemetry

#endif  // TELEMETRY_SERVER_COMMON_TRANSPORT_FLAGS_H_
