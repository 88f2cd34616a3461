// Serialises reading metadata (google.protobuf.Struct) to compact JSON for
// the JSONB column, refusing what JSONB or JSON cannot hold: non-finite
// numbers, NUL characters, excessive nesting or size. The gateway never
// forwards client-supplied JSON text: it always re-serialises typed values.
#ifndef TELEMETRY_SERVER_COMMON_METADATA_JSON_H_
#define TELEMETRY_SERVER_COMMON_METADATA_JSON_H_

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "google/protobuf/struct.pb.h"

namespace telemetry {

// Returns the JSON object text, or InvalidArgument with a reason that names
// the offending key path (e.g. "metadata.calibration.offset is not finite").
absl::StatusOr<std::string> MetadataToJson(const google::protobuf::Struct& s,
                                           size_t max_bytes, int max_depth);

}  // namespace telemetry

#endif  // TELEMETRY_SERVER_COMMON_METADATA_JSON_H_
