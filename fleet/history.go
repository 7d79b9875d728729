package fleet

import (
	"context"
	"sort"
	"time"
)

// HistoryField describes one series of a device's telemetry history that can be queried.
type HistoryField struct {
	Name      string `json:"name"`
	Unit      string `json:"unit"`
	NeedsDoor bool   `json:"needs_door"` // per door (compartment) series
}

// HistoryFields are the series of telemetry history, by name.
var HistoryFields = map[string]HistoryField{
	"ambient_c":       {Name: "ambient_c", Unit: "°C"},
	"enclosure_c":     {Name: "enclosure_c", Unit: "°C"},
	"compartment_c":   {Name: "compartment_c", Unit: "°C", NeedsDoor: true},
	"door_open":       {Name: "door_open", Unit: "fraction of the window the door was open", NeedsDoor: true},
	"heater_on":       {Name: "heater_on", Unit: "fraction of samples with the heater on"},
	"heater_duty":     {Name: "heater_duty", Unit: "fraction"},
	"compressor_on":   {Name: "compressor_on", Unit: "fraction of samples with the compressor on"},
	"compressor_duty": {Name: "compressor_duty", Unit: "fraction"},
}

// HistoryFieldNames returns the names of HistoryFields, sorted, for messages.
func HistoryFieldNames() []string {
	names := make([]string, 0, len(HistoryFields))
	for n := range HistoryFields {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// HistoryQuery asks for one series of one device, averaged over windows of Every. Since is the
// start of the device's registration (Device.CreatedAt): points before it are those of an
// earlier unit with the same id, and are left out whatever From says.
type HistoryQuery struct {
	DeviceID string
	Field    string
	Door     int // for fields that NeedsDoor
	From, To time.Time
	Every    time.Duration
	Since    time.Time
}

// HistoryPoint is one window's mean.
type HistoryPoint struct {
	T time.Time `json:"t"`
	V float64   `json:"v"`
}

// HistoryService reads telemetry history.
type HistoryService interface {
	// History returns the series q asks for, oldest first; windows without data are left out.
	History(ctx context.Context, q HistoryQuery) ([]HistoryPoint, error)
}
