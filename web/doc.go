// Package web is Starling's public face, served by the API process: the
// landing page, each author's page (profile, follow links as xmpp: URIs
// and their QR code, latest posts, live updates through the API's event
// stream), a post's page with Open Graph tags, and the author's Atom feed.
//
// Pages are rendered on the server with html/template and read well
// without JavaScript; the one script, like the style sheet, is embedded
// in the binary and served from our origin under a name that carries its
// hash. Every answer carries a Content-Security-Policy that allows no
// inline script or style and nothing from elsewhere, and the script adds
// text with textContent only, so markup in a post always shows as text.
package web
