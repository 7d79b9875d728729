package http

import (
	"net/http/httptest"
	"testing"

	"github.com/lockerhub/lockerhub/fleet"
)

// Every domain error code maps to its own HTTP status.
func TestErrorStatuses(t *testing.T) {
	for code, want := range map[string]int{
		fleet.EINVALID: 400, fleet.EUNAUTHORIZED: 401, fleet.EFORBIDDEN: 403, fleet.ENOTFOUND: 404,
		fleet.ECONFLICT: 409, fleet.ETIMEOUT: 504, fleet.ERATELIMITED: 429, fleet.EUNAVAILABLE: 503, fleet.EINTERNAL: 500,
	} {
		w := httptest.NewRecorder()
		writeError(w, fleet.Errorf(code, "x"))
		if w.Code != want {
			t.Errorf("%s: status %d, want %d", code, w.Code, want)
		}
	}
}
