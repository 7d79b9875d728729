package web_test

import (
	"compress/gzip"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"regexp"
	"strings"
	"testing"

	"github.com/lockerhub/lockerhub/fleet/http/web"
)

// get sends a request to the handler with the given headers ("Name: value").
func get(t *testing.T, method, target string, headers ...string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	web.Handler().ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestServesTheApp(t *testing.T) {
	for _, tc := range []struct {
		path, contentType, cache, contains string
	}{
		{"/", "text/html; charset=utf-8", "no-cache", `<script type="module" src="js/main.js">`},
		{"/index.html", "text/html; charset=utf-8", "no-cache", `<main id="main"`},
		{"/js/main.js", "text/javascript; charset=utf-8", "no-cache", "import "},
		{"/css/app.css", "text/css; charset=utf-8", "no-cache", ":root"},
		{"/favicon.svg", "image/svg+xml", "no-cache", "<svg"},
		{"/vendor/uplot-1.6.32/uPlot.iife.min.js", "text/javascript; charset=utf-8", "public, max-age=31536000, immutable", "uPlot"},
		{"/vendor/uplot-1.6.32/uPlot.min.css", "text/css; charset=utf-8", "public, max-age=31536000, immutable", ".uplot"},
		{"/vendor/uplot-1.6.32/LICENSE", "text/plain; charset=utf-8", "public, max-age=31536000, immutable", "MIT"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			resp := get(t, "GET", tc.path)
			b := body(t, resp)
			h := resp.Header
			if resp.StatusCode != 200 || h.Get("Content-Type") != tc.contentType || h.Get("Cache-Control") != tc.cache ||
				!strings.Contains(b, tc.contains) {
				t.Fatalf("%d, Content-Type %q, Cache-Control %q, body has %q: %v",
					resp.StatusCode, h.Get("Content-Type"), h.Get("Cache-Control"), tc.contains, strings.Contains(b, tc.contains))
			}
			if h.Get("Content-Security-Policy") != web.ContentSecurityPolicy || h.Get("X-Content-Type-Options") != "nosniff" || h.Get("ETag") == "" {
				t.Fatalf("headers %v", h)
			}
		})
	}
}

func TestCSPAllowsNothingInline(t *testing.T) {
	csp := web.ContentSecurityPolicy
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'",
		"frame-ancestors 'none'", "form-action 'none'", "require-trusted-types-for 'script'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP lacks %s: %s", want, csp)
		}
	}
	if strings.Contains(csp, "unsafe") || strings.Contains(csp, "*") {
		t.Errorf("CSP allows too much: %s", csp)
	}
}

func TestNotFoundAndMethods(t *testing.T) {
	for _, p := range []string{"/nope", "/js/", "/js", "/static/index.html", "/api/v1/unknown", "/../web.go", "/vendor/uplot-1.6.32/"} {
		resp := get(t, "GET", p)
		if resp.StatusCode != 404 || resp.Header.Get("Content-Security-Policy") == "" {
			t.Errorf("GET %s: %d, CSP %q; want 404 with the policy", p, resp.StatusCode, resp.Header.Get("Content-Security-Policy"))
		}
	}
	if resp := get(t, "POST", "/"); resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /: %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
	if resp := get(t, "HEAD", "/"); resp.StatusCode != 200 || body(t, resp) != "" {
		t.Errorf("HEAD /: %d", resp.StatusCode)
	}
}

// A browser revalidating the app with its ETag gets 304 and no body.
func TestRevalidation(t *testing.T) {
	etag := get(t, "GET", "/js/main.js").Header.Get("ETag")
	resp := get(t, "GET", "/js/main.js", "If-None-Match: "+etag)
	if resp.StatusCode != http.StatusNotModified || body(t, resp) != "" {
		t.Fatalf("If-None-Match %s: %d", etag, resp.StatusCode)
	}
	if resp := get(t, "GET", "/css/app.css", "If-None-Match: "+etag); resp.StatusCode != 200 {
		t.Fatalf("another file with that ETag: %d", resp.StatusCode)
	}
}

func TestGzip(t *testing.T) {
	const p = "/vendor/uplot-1.6.32/uPlot.iife.min.js"
	plain := get(t, "GET", p)
	plainBody := body(t, plain)
	zipped := get(t, "GET", p, "Accept-Encoding: br, gzip")
	if zipped.Header.Get("Content-Encoding") != "gzip" || !strings.Contains(zipped.Header.Get("Vary"), "Accept-Encoding") ||
		zipped.Header.Get("ETag") == plain.Header.Get("ETag") {
		t.Fatalf("gzip answer headers %v", zipped.Header)
	}
	zr, err := gzip.NewReader(zipped.Body)
	if err != nil {
		t.Fatal(err)
	}
	unzipped, err := io.ReadAll(zr)
	if err != nil || string(unzipped) != plainBody {
		t.Fatalf("gzip body does not match the file (%v)", err)
	}
	if len(unzipped) <= int(zipped.ContentLength) {
		t.Fatalf("compressed %d bytes into %d", len(unzipped), zipped.ContentLength)
	}
	for _, ae := range []string{"gzip;q=0", "identity", ""} {
		if resp := get(t, "GET", p, "Accept-Encoding: "+ae); resp.Header.Get("Content-Encoding") != "" {
			t.Errorf("Accept-Encoding %q: answered %s", ae, resp.Header.Get("Content-Encoding"))
		}
	}
}

// appFiles are the dashboard's own files (not the vendored ones) with their contents.
func appFiles(t *testing.T) map[string]string {
	t.Helper()
	files := map[string]string{}
	root := os.DirFS("static")
	err := fs.WalkDir(root, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(name, "vendor/") {
			return err
		}
		b, err := fs.ReadFile(root, name)
		files[name] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// Constructs that would run or parse text as code or markup: inline scripts, styles and event
// handlers in the markup (the CSP refuses them anyway), and APIs that parse strings as markup or
// code in the modules (Trusted Types makes them throw, but only on the code path that runs).
var (
	scriptTag  = regexp.MustCompile(`<script\b[^>]*>`)
	htmlInline = regexp.MustCompile(`\son[a-z]+\s*=|\sstyle\s*=|<style\b`)
	jsSinks    = regexp.MustCompile(`\.(?:inner|outer)HTML\s*[+]?=|insertAdjacentHTML\(|document\.write|\beval\(|new Function\(|setAttribute\(\s*['"](?:on|style)`)
)

// inlineCode returns the first such construct in an app file, or "".
func inlineCode(name, text string) string {
	switch path.Ext(name) {
	case ".html":
		for _, m := range scriptTag.FindAllStringIndex(text, -1) {
			tag := text[m[0]:m[1]]
			if !strings.Contains(tag, " src=") || !strings.HasPrefix(text[m[1]:], "</script>") {
				return tag
			}
		}
		return htmlInline.FindString(text)
	case ".js":
		return jsSinks.FindString(text)
	}
	return ""
}

func TestNoInlineCodeNorMarkupFromStrings(t *testing.T) {
	for name, text := range appFiles(t) {
		if found := inlineCode(name, text); found != "" {
			t.Errorf("%s: %q", name, found)
		}
	}
	// The check itself finds what it is for.
	for name, text := range map[string]string{
		"a.html": `<script>alert(1)</script>`,
		"b.html": `<script src="x.js">alert(1)</script>`,
		"c.html": `<button onclick="go()">`,
		"d.html": `<p style="color:red">`,
		"e.js":   `el.innerHTML = name;`,
		"f.js":   `el.insertAdjacentHTML('beforeend', x)`,
		"g.js":   `el.setAttribute('onclick', code)`,
	} {
		if inlineCode(name, text) == "" {
			t.Errorf("%s: %s not caught", name, text)
		}
	}
}

// Every file index.html and the modules refer to is served: a typo in an import would break the
// app only in a browser.
func TestReferencesResolve(t *testing.T) {
	files := appFiles(t)
	refs := regexp.MustCompile(`(?:src|href)="([^"#:]+)"`)
	imports := regexp.MustCompile(`(?m)^import [^'"]*['"]([^'"]+)['"]`)
	for name, text := range files {
		var found []string
		switch path.Ext(name) {
		case ".html":
			for _, m := range refs.FindAllStringSubmatch(text, -1) {
				found = append(found, m[1])
			}
		case ".js":
			for _, m := range imports.FindAllStringSubmatch(text, -1) {
				found = append(found, path.Join(path.Dir(name), m[1]))
			}
		}
		for _, ref := range found {
			if resp := get(t, "GET", "/"+ref); resp.StatusCode != 200 {
				t.Errorf("%s refers to %s: %d", name, ref, resp.StatusCode)
			}
		}
	}
	if len(files) < 5 {
		t.Fatalf("only %d app files found", len(files))
	}
}
