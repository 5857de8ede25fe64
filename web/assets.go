package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed static
var staticFS embed.FS

// asset is one embedded file, served under a name that carries its hash.
type asset struct {
	data        []byte
	contentType string
	etag        string
}

// assets maps each embedded file's name to its hashed name and back.
type assets struct {
	byHashed map[string]asset
	hashed   map[string]string // style.css -> style.0123abcd.css
}

// assetTypes are the content types of the files we embed.
var assetTypes = map[string]string{
	".css": "text/css; charset=utf-8",
	".js":  "text/javascript; charset=utf-8",
	".svg": "image/svg+xml",
}

func loadAssets() (*assets, error) {
	a := &assets{byHashed: map[string]asset{}, hashed: map[string]string{}}
	entries, err := fs.ReadDir(staticFS, "static")
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		name := e.Name()
		data, err := staticFS.ReadFile("static/" + name)
		if err != nil {
			return nil, err
		}
		ext := path.Ext(name)
		ct, ok := assetTypes[ext]
		if !ok {
			return nil, fmt.Errorf("web: asset %s has no known content type", name)
		}
		sum := sha256.Sum256(data)
		h := hex.EncodeToString(sum[:6])
		hashed := strings.TrimSuffix(name, ext) + "." + h + ext
		a.hashed[name] = hashed
		a.byHashed[hashed] = asset{data: data, contentType: ct, etag: `"` + h + `"`}
	}
	return a, nil
}

// path is the address of the embedded file name; templates call it as
// {{asset "style.css"}}. An unknown name is a bug in a template, caught
// when the templates are first executed in tests.
func (a *assets) path(name string) (string, error) {
	h, ok := a.hashed[name]
	if !ok {
		return "", fmt.Errorf("web: no asset %q", name)
	}
	return "/assets/" + h, nil
}

// assetMaxAge is how long a hashed asset may be cached: its name changes
// with its content, so forever.
const assetCacheControl = "public, max-age=31536000, immutable"

// asset handles GET /assets/{name}.
func (p *Pages) asset(w http.ResponseWriter, r *http.Request) {
	a, ok := p.assets.byHashed[r.PathValue("name")]
	if !ok {
		p.notFound(w, r, "There is no such file.")
		return
	}
	w.Header().Set("Content-Type", a.contentType)
	w.Header().Set("Cache-Control", assetCacheControl)
	w.Header().Set("ETag", a.etag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.data))
}
