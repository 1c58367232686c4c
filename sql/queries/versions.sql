-- name: ListFunctionVersions :many
SELECT v.version, v.source_sha256, v.created_at, octet_length(v.source)::integer AS source_bytes
FROM picloud.function_versions v
WHERE v.function = @name
ORDER BY v.version DESC;

-- name: GetFunctionVersion :one
SELECT v.version, v.source, v.source_sha256, v.created_at
FROM picloud.function_versions v
WHERE v.function = @name AND v.version = @version;
