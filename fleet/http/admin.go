package http

import (
	"errors"
	"net/http"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
)

// maxAuditEntries bounds one audit response; page with since.
const maxAuditEntries = 10_000

// handleAudit returns audit entries (filters since, device), oldest first. Only admins without
// a site scope may read it: the trail spans every site.
func (a *api) handleAudit(w http.ResponseWriter, r *http.Request, tok *fleet.Token) {
	if len(tok.Sites) > 0 {
		writeError(w, fleet.Errorf(fleet.EFORBIDDEN, "the audit trail spans every site; a site-scoped token may not read it"))
		return
	}
	f := fleet.AuditFilter{Device: r.URL.Query().Get("device")}
	if v := r.URL.Query().Get("since"); v != "" {
		var err error
		if f.Since, err = time.Parse(time.RFC3339, v); err != nil {
			writeError(w, fleet.Errorf(fleet.EINVALID, "since: %q is not an RFC 3339 time", v))
			return
		}
	}
	entries := []*fleet.AuditEntry{}
	errFull := errors.New("full")
	err := a.svc.Audit.Entries(r.Context(), f, func(e *fleet.AuditEntry) error {
		if len(entries) == maxAuditEntries {
			return errFull
		}
		entries = append(entries, e)
		return nil
	})
	if err != nil && !errors.Is(err, errFull) {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"entries": entries, "truncated": errors.Is(err, errFull)})
}

// handleCreateDevice registers a device at a site within the token's scope and answers 201 with
// its secret, shown this once.
func (a *api) handleCreateDevice(w http.ResponseWriter, r *http.Request, tok *fleet.Token) {
	var d fleet.Device
	if err := decodeBody(w, r, &d); err != nil {
		writeError(w, err)
		return
	}
	if !tok.InScope(d.Site) {
		writeError(w, fleet.Errorf(fleet.EFORBIDDEN, "site %q is outside this token's scope", d.Site))
		return
	}
	secret, err := a.svc.Devices.CreateDevice(r.Context(), &d)
	if err != nil {
		writeError(w, err)
		return
	}
	writeSecret(w, http.StatusCreated, map[string]any{"id": d.ID, "secret": secret, "device": &d})
}

func (a *api) handleRotateSecret(w http.ResponseWriter, r *http.Request, tok *fleet.Token) {
	d, err := a.device(r, tok, r.PathValue("id"))
	var secret string
	if err == nil {
		secret, err = a.svc.Devices.RotateSecret(r.Context(), d.ID)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	writeSecret(w, http.StatusOK, map[string]any{"id": d.ID, "secret": secret})
}

func (a *api) handleSetEnabled(enabled bool) authedHandler {
	return func(w http.ResponseWriter, r *http.Request, tok *fleet.Token) {
		d, err := a.device(r, tok, r.PathValue("id"))
		if err == nil {
			d, err = a.svc.Devices.SetEnabled(r.Context(), d.ID, enabled)
		}
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, a.view(d))
	}
}

func (a *api) handleDeleteDevice(w http.ResponseWriter, r *http.Request, tok *fleet.Token) {
	d, err := a.device(r, tok, r.PathValue("id"))
	if err == nil {
		err = a.svc.Devices.DeleteDevice(r.Context(), d.ID)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// handleTokens lists the tokens whose scope lies within the caller's.
func (a *api) handleTokens(w http.ResponseWriter, r *http.Request, tok *fleet.Token) {
	tokens, err := a.svc.Tokens.FindTokens(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	visible := []*fleet.Token{}
	for _, t := range tokens {
		if within(tok, t) {
			visible = append(visible, t)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"tokens": visible})
}

// within reports whether token t's scope lies inside admin's, so that a property manager's
// admin cannot see or revoke the tokens of other properties.
func within(admin, t *fleet.Token) bool {
	if len(admin.Sites) == 0 {
		return true
	}
	if len(t.Sites) == 0 {
		return false
	}
	for _, site := range t.Sites {
		if !admin.InScope(site) {
			return false
		}
	}
	return true
}

// handleCreateToken creates a token, never with a wider scope than the creator's own.
func (a *api) handleCreateToken(w http.ResponseWriter, r *http.Request, tok *fleet.Token) {
	var t fleet.Token
	if err := decodeBody(w, r, &t); err != nil {
		writeError(w, err)
		return
	}
	if len(tok.Sites) > 0 && len(t.Sites) == 0 {
		t.Sites = tok.Sites
	}
	if !within(tok, &t) {
		writeError(w, fleet.Errorf(fleet.EFORBIDDEN, "sites %v reach outside this token's scope", t.Sites))
		return
	}
	secret, err := a.svc.Tokens.CreateToken(r.Context(), &t)
	if err != nil {
		writeError(w, err)
		return
	}
	writeSecret(w, http.StatusCreated, map[string]any{"id": t.ID, "token": secret, "role": t.Role, "sites": t.Sites})
}

func (a *api) handleRevokeToken(w http.ResponseWriter, r *http.Request, tok *fleet.Token) {
	id := r.PathValue("id")
	tokens, err := a.svc.Tokens.FindTokens(r.Context())
	if err == nil {
		err = fleet.Errorf(fleet.ENOTFOUND, "token %q not found", id)
		for _, t := range tokens {
			if t.ID == id && within(tok, t) {
				err = a.svc.Tokens.RevokeToken(r.Context(), id)
			}
		}
	}
	if err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
