#include "storage/pg/schema_mode.h"

#include "storage/pg/schema_mode_impl.h"

namespace telemetry::pg {

const SchemaMode& SchemaMode::For(StorageMode mode) {
  return mode == StorageMode::kTimescale ? TimescaleSchema() : NativeSchema();
}

}  // namespace telemetry::pg
