// Package web serves the technician dashboard: a single-page app of plain JavaScript modules,
// HTML and CSS, embedded in the hub's binary so that it needs no CDN and no build step and works
// wherever the hub is reachable. The app talks to the hub's API under /api/v1/ with the bearer
// token its user signs in with; this package only serves its files.
package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html"
	"io/fs"
	"maps"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"
)

//go:embed static
var static embed.FS

// ContentSecurityPolicy is sent with every response. Scripts, styles and connections come from
// the hub only, and nothing inline runs: the app never writes markup from strings (Trusted
// Types without any policy makes innerHTML and its kin throw), so text from units and users
// cannot become script. form-action 'none' keeps a form from ever submitting the API token in
// a URL should the scripts fail to load.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; " +
	"require-trusted-types-for 'script'; trusted-types 'none'"

// Cache policies: vendored libraries live in directories named with their version, so a URL
// never changes content and browsers may keep it for a year; everything else (index.html and
// the app's own modules) is revalidated on every load with its ETag, so an upgraded hub serves
// the new app at once.
const (
	cacheImmutable  = "public, max-age=31536000, immutable"
	cacheRevalidate = "no-cache"
)

// contentTypes are the types of the files the app consists of. They are fixed here rather than
// taken from the system's MIME database, which varies between machines: browsers refuse to run a
// module script served with anything but a JavaScript type.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
	".png":  "image/png",
	".json": "application/json",
	"":      "text/plain; charset=utf-8", // LICENSE files
}

// asset is one embedded file, ready to serve.
type asset struct {
	body, gzipped []byte // gzipped is nil when compressing does not pay
	etag          string
	contentType   string
	cacheControl  string
}

// minGzip is the size below which compressing a file is not worth a round of gzip.
const minGzip = 1024

// assets maps URL paths without the leading slash ("index.html", "js/main.js") to the files.
// It is built once, on first use: the embedded files never change.
var assets = sync.OnceValue(func() map[string]*asset {
	root, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embed directive guarantees the directory
	}
	m := make(map[string]*asset)
	err = fs.WalkDir(root, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(root, name)
		if err != nil {
			return err
		}
		m[name] = newAsset(name, body)
		return nil
	})
	if err != nil {
		panic(err)
	}
	return m
})

// newAsset prepares the file at URL path name for serving.
func newAsset(name string, body []byte) *asset {
	sum := sha256.Sum256(body)
	a := &asset{body: body, etag: `"` + base64.RawURLEncoding.EncodeToString(sum[:16]) + `"`,
		contentType: "application/octet-stream", cacheControl: cacheRevalidate}
	if ct, ok := contentTypes[path.Ext(name)]; ok {
		a.contentType = ct
	}
	if strings.HasPrefix(name, "vendor/") {
		a.cacheControl = cacheImmutable
	}
	if len(body) >= minGzip {
		a.gzipped = compress(body)
	}
	return a
}

// Addon is a part a program adds to the dashboard, such as the panel of `lockerhub demo`. A
// hub without addons serves the app exactly as embedded, with no trace of them.
type Addon struct {
	Name    string   // its files are served under /Name/
	Files   fs.FS    // read once, by Handler
	Scripts []string // module scripts among Files that index.html loads after the app's own
	Styles  []string // stylesheets among Files that index.html links after the app's own
}

// withAddons returns files with the addons' files added and index.html loading them.
func withAddons(files map[string]*asset, addons []Addon) (map[string]*asset, error) {
	files = maps.Clone(files)
	var tags strings.Builder
	for _, ad := range addons {
		err := fs.WalkDir(ad.Files, ".", func(name string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			body, err := fs.ReadFile(ad.Files, name)
			if err == nil {
				files[ad.Name+"/"+name] = newAsset(ad.Name+"/"+name, body)
			}
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("dashboard addon %s: %w", ad.Name, err)
		}
		for _, css := range ad.Styles {
			fmt.Fprintf(&tags, "<link rel=\"stylesheet\" href=\"%s\">\n", html.EscapeString(ad.Name+"/"+css))
		}
		for _, js := range ad.Scripts {
			fmt.Fprintf(&tags, "<script type=\"module\" src=\"%s\"></script>\n", html.EscapeString(ad.Name+"/"+js))
		}
	}
	index := string(files["index.html"].body)
	at := strings.Index(index, "</head>")
	if at < 0 {
		return nil, errors.New("dashboard addons: index.html has no </head>")
	}
	files["index.html"] = newAsset("index.html", []byte(index[:at]+tags.String()+index[at:]))
	return files, nil
}

func compress(b []byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.Write(b)
	zw.Close()
	if buf.Len() >= len(b) {
		return nil
	}
	return buf.Bytes()
}

// Handler serves the dashboard: / is the app (index.html), and its modules, stylesheets and
// vendored libraries are served by path with their content type, cache policy and ETag,
// gzip-compressed for clients that accept it, and so are the files of addons. Anything else is
// 404. Every response carries the Content-Security-Policy. Mount it for GET / on the hub's mux;
// the app's routes are in the URL fragment (#/alerts, #/unit/ID), which never reaches the
// server. Like the app's, an addon's files are embedded in the binary: it panics if they cannot
// be read, a programming error.
func Handler(addons ...Addon) http.Handler {
	files := assets()
	if len(addons) > 0 {
		var err error
		if files, err = withAddons(files, addons); err != nil {
			panic(err)
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		name := strings.TrimPrefix(r.URL.Path, "/")
		if name == "" {
			name = "index.html"
		}
		a, ok := files[name]
		if !ok {
			http.NotFound(w, r)
			return
		}
		body, etag := a.body, a.etag
		if a.gzipped != nil {
			h.Add("Vary", "Accept-Encoding")
			if acceptsGzip(r) {
				body, etag = a.gzipped, strings.TrimSuffix(a.etag, `"`)+`-gz"`
				h.Set("Content-Encoding", "gzip")
			}
		}
		h.Set("Content-Type", a.contentType)
		h.Set("Cache-Control", a.cacheControl)
		h.Set("ETag", etag)
		// ServeContent answers conditional requests (If-None-Match) with 304 and HEAD without a
		// body; a zero time leaves Last-Modified out, the ETag says it all.
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(body))
	})
}

// acceptsGzip reports whether the request's Accept-Encoding allows gzip (not refused with q=0).
func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			q := strings.ReplaceAll(params, " ", "")
			return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
		}
	}
	return false
}
