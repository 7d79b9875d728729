package http

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/lockerhub/lockerhub/fleet"
)

// Parcel custody. A carrier token may deliver, drop off and read the parcels it delivered,
// and nothing else; viewers and up read every parcel of their sites; operators and up also
// deliver, cancel and retrieve. A parcel or unit outside the token's scope is answered as not
// found. The pickup code appears in the answer to its delivery, once, and nowhere else.

// DeliveryResponse is the answer to POST /api/v1/deliveries: the parcel and its pickup code,
// which is not stored and cannot be shown again.
type DeliveryResponse struct {
	Parcel *fleet.Parcel `json:"parcel"`
	Code   string        `json:"code"`
}

// ParcelResponse is the answer about one parcel; Command is the unlock of a retrieve.
type ParcelResponse struct {
	Parcel  *fleet.Parcel  `json:"parcel"`
	Command *fleet.Command `json:"command,omitempty"`
}

// ParcelList is the answer to GET /api/v1/parcels.
type ParcelList struct {
	Parcels []*fleet.Parcel `json:"parcels"`
}

// ReasonRequest is the body of a cancel or a retrieve.
type ReasonRequest struct {
	Reason string `json:"reason"`
}

func (a *api) handleParcels(mux *http.ServeMux) {
	mux.Handle("POST /api/v1/deliveries", a.authBy(mayDeliver, a.handleDeliver))
	mux.Handle("GET /api/v1/parcels", a.authBy(mayReadParcels, a.handleParcelList))
	mux.Handle("GET /api/v1/parcels/{id}", a.authBy(mayReadParcels, a.handleParcel))
	mux.Handle("POST /api/v1/parcels/{id}/dropoff", a.authBy(mayDeliver, a.handleDropOff))
	mux.Handle("POST /api/v1/parcels/{id}/cancel", a.auth(fleet.RoleOperator, a.handleParcelClose(false)))
	mux.Handle("POST /api/v1/parcels/{id}/retrieve", a.auth(fleet.RoleOperator, a.handleParcelClose(true)))
}

func mayDeliver(tok *fleet.Token) error {
	if !tok.Role.MayDeliver() {
		return fleet.Errorf(fleet.EFORBIDDEN, "a %s token may not deliver parcels: it needs carrier or operator", tok.Role)
	}
	return nil
}

func mayReadParcels(tok *fleet.Token) error {
	if tok.Role == fleet.RoleCarrier {
		return nil // its own parcels only; see parcel and handleParcelList
	}
	return allows(tok, fleet.RoleViewer)
}

// handleDeliver records a delivery: body fleet.Delivery; 201 with the parcel and its code.
func (a *api) handleDeliver(w http.ResponseWriter, r *http.Request, tok *fleet.Token) {
	var d fleet.Delivery
	if err := decodeBody(w, r, &d); err != nil {
		writeError(w, err)
		return
	}
	if d.DeviceID != "" {
		if _, err := a.device(r, tok, d.DeviceID); err != nil {
			writeError(w, err)
			return
		}
	} else if d.Site != "" && !tok.InScope(d.Site) {
		writeError(w, fleet.Errorf(fleet.ENOTFOUND, "site %q has no enabled unit", d.Site))
		return
	}
	p, code, err := a.svc.Parcels.Deliver(r.Context(), d)
	if err != nil {
		writeError(w, err)
		return
	}
	writeSecret(w, http.StatusCreated, DeliveryResponse{Parcel: p, Code: code})
}

// parcel returns parcel id if the token may see it: its unit in the token's scope and still
// of the registration it was delivered to, and, for a carrier, delivered by the token.
func (a *api) parcel(r *http.Request, tok *fleet.Token, id string) (*fleet.Parcel, error) {
	p, err := a.svc.Parcels.FindParcelByID(r.Context(), id)
	if err != nil {
		return nil, err
	}
	d, err := a.device(r, tok, p.DeviceID)
	if err != nil || d.Registration != p.Registration || tok.Role == fleet.RoleCarrier && p.Actor != tok.Actor().ID {
		return nil, fleet.Errorf(fleet.ENOTFOUND, "parcel %q not found", id)
	}
	return p, nil
}

// handleParcelList lists parcels, newest first: filters device, site, status (repeatable or
// comma-separated), occupies, limit. A carrier sees those it delivered.
func (a *api) handleParcelList(w http.ResponseWriter, r *http.Request, tok *fleet.Token) {
	q := r.URL.Query()
	f := fleet.ParcelFilter{DeviceID: q.Get("device"), Site: q.Get("site"), Sites: tok.Sites, Current: true} // no sites: every site
	if tok.Role == fleet.RoleCarrier {
		f.Actor = tok.Actor().ID
	}
	for _, v := range q["status"] {
		for _, st := range strings.Split(v, ",") {
			if st = strings.TrimSpace(st); st != "" {
				f.Status = append(f.Status, fleet.ParcelStatus(st))
			}
		}
	}
	var err error
	if v := q.Get("occupies"); v != "" {
		if f.Occupies, err = strconv.ParseBool(v); err != nil {
			writeError(w, fleet.Errorf(fleet.EINVALID, "occupies: %q is not true or false", v))
			return
		}
	}
	if v := q.Get("limit"); v != "" {
		if f.Limit, err = strconv.Atoi(v); err != nil || f.Limit < 1 {
			writeError(w, fleet.Errorf(fleet.EINVALID, "limit: %q is not a number from 1 to 1000", v))
			return
		}
	}
	ps, err := a.svc.Parcels.FindParcels(r.Context(), f)
	if err != nil {
		writeError(w, err)
		return
	}
	if ps == nil {
		ps = []*fleet.Parcel{}
	}
	writeJSON(w, http.StatusOK, ParcelList{Parcels: ps})
}

func (a *api) handleParcel(w http.ResponseWriter, r *http.Request, tok *fleet.Token) {
	p, err := a.parcel(r, tok, r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ParcelResponse{Parcel: p})
}

func (a *api) handleDropOff(w http.ResponseWriter, r *http.Request, tok *fleet.Token) {
	if _, err := a.parcel(r, tok, r.PathValue("id")); err != nil {
		writeError(w, err)
		return
	}
	p, err := a.svc.Parcels.DropOff(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ParcelResponse{Parcel: p})
}

// handleParcelClose cancels a parcel (body {"reason": "..."}, optional) or retrieves it (the
// reason required): a retrieve answers with the unlock it sent, and waits for it like an
// unlock does.
func (a *api) handleParcelClose(retrieve bool) authedHandler {
	return func(w http.ResponseWriter, r *http.Request, tok *fleet.Token) {
		var body ReasonRequest
		if r.ContentLength != 0 || retrieve {
			if err := decodeBody(w, r, &body); err != nil {
				writeError(w, err)
				return
			}
		}
		id := r.PathValue("id")
		if _, err := a.parcel(r, tok, id); err != nil {
			writeError(w, err)
			return
		}
		var resp ParcelResponse
		var err error
		if retrieve {
			resp.Parcel, resp.Command, err = a.svc.Parcels.Retrieve(r.Context(), id, body.Reason)
		} else {
			resp.Parcel, err = a.svc.Parcels.Cancel(r.Context(), id, body.Reason)
		}
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, resp)
	}
}
