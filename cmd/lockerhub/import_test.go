package main_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// device import registers a whole file in one go, all or nothing, lists bad rows by line and
// prints every secret once; the secrets it prints are the ones the registry checks. The formats
// and their errors are tested in fleet/deviceimport.
func TestDeviceImport(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	environ := env(filepath.Join(dir, "data"))
	emptyStore(t, filepath.Join(dir, "data"))
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	type listed struct {
		ID     string
		Labels map[string]string
	}
	list := func() (ids string, ds []listed) {
		out, errOut, code := run(t, environ, "device", "list", "--json")
		if code != 0 || json.Unmarshal([]byte(out), &ds) != nil {
			t.Fatalf("device list: exit %d %s", code, errOut)
		}
		var s []string
		for _, d := range ds {
			s = append(s, d.ID)
		}
		return strings.Join(s, ","), ds
	}
	stdin := func(text string, args ...string) *exec.Cmd {
		cmd := exec.Command(binary, args...)
		cmd.Env, cmd.Stdin = environ, strings.NewReader(text)
		return cmd
	}

	for _, tc := range []struct {
		name, file string
		wantErr    []string // substrings of stderr
	}{
		{"bad rows by line", write("bad.csv", "id,kind,site,doors,labels\n"+
			"ok-1,fridge,oak,4,\n"+
			"ok-1,fridge,oak,4,\n"+
			"\n"+
			"oven-1,oven,oak,4,\n"+
			"bank-9,locker-bank,oak,many,\n"+
			"bank-8,locker-bank,oak,12,floor\n"),
			[]string{"nothing imported", `line 3: device id "ok-1" is also on line 2`, `line 5: unknown kind "oven"`,
				`line 6: doors "many" is not a number`, `line 7: invalid label "floor"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errOut, code := run(t, environ, "device", "import", "--file", tc.file)
			for _, want := range tc.wantErr {
				if code == 0 || !strings.Contains(errOut, want) {
					t.Errorf("exit %d, stderr %q; want a failure with %q", code, errOut, want)
				}
			}
		})
	}
	if ids, _ := list(); ids != "" {
		t.Fatalf("refused imports left devices behind: %s", ids)
	}

	csvFile := write("fleet.csv", "id,kind,site,doors,labels\n"+
		"bank-1,locker-bank,elm,24,floor=lobby;zone=a\n"+
		"fridge-1,fridge,elm,6,class=freezer\n")
	out, errOut, code := run(t, environ, "device", "import", "--file", csvFile, "--json")
	if code != 0 || !strings.Contains(errOut, "imported 2 devices") {
		t.Fatalf("import: exit %d, stderr %q", code, errOut)
	}
	var secrets []struct{ ID, Secret string }
	dec := json.NewDecoder(strings.NewReader(out))
	for dec.More() {
		var s struct{ ID, Secret string }
		if err := dec.Decode(&s); err != nil {
			t.Fatalf("import --json printed %q: %v", out, err)
		}
		secrets = append(secrets, s)
	}
	if len(secrets) != 2 || secrets[0].ID != "bank-1" || secrets[1].ID != "fridge-1" || secrets[0].Secret == "" {
		t.Fatalf("import --json printed %q", out)
	}

	// JSON lines from stdin; one id is taken, so none of the file is imported.
	jsonl := `{"id":"bank-2","kind":"locker-bank","site":"oak","doors":12}` + "\n" + `{"id":"bank-1","kind":"locker-bank","site":"oak","doors":12}` + "\n"
	if b, err := stdin(jsonl, "device", "import", "--file", "-").CombinedOutput(); err == nil || !strings.Contains(string(b), `nothing imported: device "bank-1" already exists`) {
		t.Fatalf("import of a taken id: %v %s", err, b)
	}
	if ids, _ := list(); ids != "bank-1,fridge-1" {
		t.Fatalf("registry after a refused import: %s", ids)
	}
	if b, err := stdin(strings.Replace(jsonl, `"bank-1"`, `"bank-3"`, 1), "device", "import", "--file", "-").Output(); err != nil || !strings.HasPrefix(string(b), "bank-2\t") {
		t.Fatalf("import from stdin: %v %s", err, b)
	}

	// The CSV's labels arrived, and the audit trail has every device.
	if ids, ds := list(); ids != "bank-1,bank-2,bank-3,fridge-1" || ds[0].Labels["floor"] != "lobby" || ds[0].Labels["zone"] != "a" {
		t.Errorf("device list after the imports: %+v", ds)
	}
	out, _, _ = run(t, environ, "audit", "export")
	if n := strings.Count(out, `"action":"device.create"`); n != 4 {
		t.Errorf("audit export has %d device.create entries, want 4:\n%s", n, out)
	}
}
