package api

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/danielgtaylor/huma/v2/yaml"
)

// OpenAPIDocuments returns the API's OpenAPI 3.1 document and its 3.0
// downgrade, both in YAML. They need no database: the committed copies in
// openapi/ are generated from them by `picloud openapi`.
func OpenAPIDocuments() (v31, v30 []byte, err error) {
	doc := New(Config{}).OpenAPI()
	if v31, err = doc.YAML(); err != nil {
		return nil, nil, fmt.Errorf("OpenAPI 3.1: %w", err)
	}
	downgraded, err := doc.Downgrade()
	if err != nil {
		return nil, nil, fmt.Errorf("OpenAPI 3.0: %w", err)
	}
	var tree any
	if err := json.Unmarshal(downgraded, &tree); err != nil {
		return nil, nil, fmt.Errorf("OpenAPI 3.0: %w", err)
	}
	removeOpenAPI31Keywords(tree)
	fixed, err := json.Marshal(tree)
	if err != nil {
		return nil, nil, fmt.Errorf("OpenAPI 3.0: %w", err)
	}
	var buf bytes.Buffer
	if err := yaml.Convert(&buf, bytes.NewReader(fixed)); err != nil {
		return nil, nil, fmt.Errorf("OpenAPI 3.0: %w", err)
	}
	return v31, buf.Bytes(), nil
}

// removeOpenAPI31Keywords rewrites what huma 2.37's downgrade leaves behind
// and 3.0-only tools reject: contentMediaType (3.0 says format: binary), const
// (3.0 has only enum) and license.identifier (3.0 has only url).
func removeOpenAPI31Keywords(node any) {
	switch v := node.(type) {
	case map[string]any:
		if _, ok := v["contentMediaType"]; ok {
			delete(v, "contentMediaType")
			if v["type"] == "string" && v["format"] == nil {
				v["format"] = "binary"
			}
		}
		if c, ok := v["const"]; ok {
			delete(v, "const")
			v["enum"] = []any{c}
		}
		if license, ok := v["license"].(map[string]any); ok {
			delete(license, "identifier")
		}
		for _, child := range v {
			removeOpenAPI31Keywords(child)
		}
	case []any:
		for _, child := range v {
			removeOpenAPI31Keywords(child)
		}
	}
}
