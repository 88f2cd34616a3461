// What build this binary is: the project version and the commit it was built
// from (`git describe`, "-dirty" for uncommitted changes), e.g.
// "0.1.0+25be504". Generated at build time, so it is right after every
// commit without re-running cmake; "0.1.0+unknown" outside a git checkout
// (a Docker build passes -DTELEMETRY_GIT_DESCRIBE instead).
#ifndef TELEMETRY_SERVER_COMMON_BUILD_VERSION_H_
#define TELEMETRY_SERVER_COMMON_BUILD_VERSION_H_

namespace telemetry {

const char* BuildVersion();

}  // namespace telemetry

#endif  // TELEMETRY_SERVER_COMMON_BUILD_VERSION_H_
