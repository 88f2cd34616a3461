// The two SchemaMode implementations (schema_mode.h); only SchemaMode::For
// and the implementations include this.
#ifndef TELEMETRY_STORAGE_PG_SCHEMA_MODE_IMPL_H_
#define TELEMETRY_STORAGE_PG_SCHEMA_MODE_IMPL_H_

#include "storage/pg/schema_mode.h"

namespace telemetry::pg {

const SchemaMode& NativeSchema();     // native_schema_mode.cc
const SchemaMode& TimescaleSchema();  // timescale_schema_mode.cc

}  // namespace telemetry::pg

#endif  // TELEMETRY_STORAGE_PG_SCHEMA_MODE_IMPL_H_
