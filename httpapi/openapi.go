package httpapi

import (
	_ "embed"
	"net/http"
)

// OpenAPI is the OpenAPI 3.1 document of the API, served at /openapi.yaml.
// The package's tests validate every request they make and every answer they
// get against it, so it cannot drift from the handlers.
//
//go:embed openapi.yaml
var OpenAPI []byte

// openAPI handles GET /openapi.yaml.
func (s *server) openAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(OpenAPI)
}
