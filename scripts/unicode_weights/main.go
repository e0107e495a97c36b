// Command unicode_weights generates shardgate's unicode_loose collation table
// (cython_ext/data/unicode_loose_weights.bin) from golang.org/x/text's collate
// tables, and writes cross-check corpora that compare our Python/Cython port
// with the real x/text collator.
//
// It is a development-time tool: shardgate never needs Go at run time. See
// README.md beside this file for how to re-run it.
//
// What Vitess hashes for unicode_loose_md5 / unicode_loose_xxhash is
//
//	collate.New(language.English, collate.Loose).Key(buf, bytes.TrimRight(in, " "))
//
// i.e. the primary weights of the root ("und", tableIndex{0x15, 0x0}) table of
// x/text's CLDR 23 / UCA 6.2.0 collation tables, computed by x/text's
// internal/colltab algorithm (trie lookup, expansions, contractions including
// discontiguous ones, NFKD decompositions, Hangul and implicit weights, and
// canonical reordering by the combining class stored in the collation
// elements). Vitess later vendored exactly that code under
// go/mysql/collations/vindex/{collate,internal/colltab,unicode/norm}.
//
// Our Python port (cython_ext/pure/collation.py) runs the same algorithm, so
// this program dumps the table it needs rather than a per-character key list:
//
//   - the collation element (colltab.Elem, uint32) of every code point, as a
//     two-stage table (blocks of 64 code points, deduplicated). Three
//     primary-preserving rewrites are applied:
//     ceDecompose elements (0xF0000000 | tertiaries) become
//     0xF0000000 | offset of the code point's NFKD decomposition in a pool
//     (the tertiary weights they carried are irrelevant at the primary level);
//     unlisted ideographs (elem 0 and unicode.Ideographic) become the markers
//     0xFF000001 (implicit primary = r + 0x10000) or 0xFF000002 (r + 0x20000),
//     so the port needs no Ideographic property table;
//   - ExpandElem, ContractElem and the contraction trie (ContractTries) as is;
//   - the NFD properties used by discontiguous contraction matching:
//     LeadCCC, TrailCCC and the number of leading non-starters, for every code
//     point where one of them is non-zero.
//
// Usage (from this directory):
//
//	go run . -table ../../cython_ext/data/unicode_loose_weights.bin -corpus testdata/crosscheck.json.gz
//	go run . -fullcheck /tmp/unicode_loose_full.json.gz   # every code point and contraction, ~1.2M keys
//	go run . -keys ../../../shared/vectors/vitess_vindex_vectors.json
package main

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"reflect"
	"runtime"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/collate"
	"golang.org/x/text/language"
	"golang.org/x/text/unicode/norm"
)

// xtextVersion must match go.mod; it is recorded in the generated table.
const xtextVersion = "v0.43.0"

// Elem type boundaries (golang.org/x/text/internal/colltab/collelem.go).
const (
	maxCE       = 0xAFFFFFFF
	maxContract = 0xDFFFFFFF
	maxExpand   = 0xEFFFFFFF
	minDecomp   = 0xF0000000

	markerCommonIdeo = 0xFF000001 // implicit primary = r + 0x10000
	markerRareIdeo   = 0xFF000002 // implicit primary = r + 0x20000

	blockBits = 6
	blockSize = 1 << blockBits
	nRunes    = 0x110000
)

// table mirrors colltab.Table, read out of a *collate.Collator by reflection
// (the type lives in an internal package, so it cannot be named here).
type table struct {
	Index0, Index     []uint16
	Values0, Values   []uint32
	ExpandElem        []uint32
	ContractElem      []uint32
	ContractTries     [][4]uint8 // L, H, N, I
	VariableTop       uint32
	lookupOffset      int
	valuesOffset      int
	indexPtr, valsPtr uintptr
}

func u16s(v reflect.Value) []uint16 {
	out := make([]uint16, v.Len())
	for i := range out {
		out[i] = uint16(v.Index(i).Uint())
	}
	return out
}

func u32s(v reflect.Value) []uint32 {
	out := make([]uint32, v.Len())
	for i := range out {
		out[i] = uint32(v.Index(i).Uint())
	}
	return out
}

func extractTable(c *collate.Collator) *table {
	w := reflect.ValueOf(c).Elem().FieldByName("options").FieldByName("t")
	if w.Kind() == reflect.Interface {
		w = w.Elem()
	}
	if w.Type().String() != "*colltab.Table" {
		fail("unexpected weighter type %s (numeric option set?)", w.Type())
	}
	t := w.Elem()
	trie := t.FieldByName("Index")
	out := &table{
		Index0:       u16s(trie.FieldByName("Index0")),
		Values0:      u32s(trie.FieldByName("Values0")),
		Index:        u16s(trie.FieldByName("Index")),
		Values:       u32s(trie.FieldByName("Values")),
		ExpandElem:   u32s(t.FieldByName("ExpandElem")),
		ContractElem: u32s(t.FieldByName("ContractElem")),
		VariableTop:  uint32(t.FieldByName("VariableTop").Uint()),
	}
	ct := t.FieldByName("ContractTries")
	out.ContractTries = make([][4]uint8, ct.Len())
	for i := range out.ContractTries {
		e := ct.Index(i)
		for j, name := range []string{"L", "H", "N", "I"} {
			out.ContractTries[i][j] = uint8(e.FieldByName(name).Uint())
		}
	}
	// Offsets of the locale's first-byte tables inside the shared arrays: the
	// root table is tableIndex{lookupOffset: 0x15, valuesOffset: 0x0}.
	out.indexPtr = trie.FieldByName("Index").Pointer()
	out.valsPtr = trie.FieldByName("Values").Pointer()
	out.lookupOffset = int(trie.FieldByName("Index0").Pointer()-out.indexPtr) / 2 / blockSize
	out.valuesOffset = int(trie.FieldByName("Values0").Pointer()-out.valsPtr) / 4 / blockSize
	return out
}

// lookup is colltab.Trie.lookup (trie.go), for valid UTF-8 only.
func (t *table) lookup(s []byte) (uint32, int) {
	c0 := s[0]
	switch {
	case c0 < 0x80:
		return t.Values0[c0], 1
	case c0 < 0xE0:
		i := t.Index0[c0]
		return t.Values[int(i)<<6+int(s[1])], 2
	case c0 < 0xF0:
		i := t.Index0[c0]
		i = t.Index[int(i)<<6+int(s[1])]
		return t.Values[int(i)<<6+int(s[2])], 3
	default:
		i := t.Index0[c0]
		i = t.Index[int(i)<<6+int(s[1])]
		i = t.Index[int(i)<<6+int(s[2])]
		return t.Values[int(i)<<6+int(s[3])], 4
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "unicode_weights: "+format+"\n", args...)
	os.Exit(1)
}

func newCollator() *collate.Collator {
	return collate.New(language.English, collate.Loose)
}

// vitessKey is what Vitess hashes (go/vt/vtgate/vindexes/unicode.go normalize).
func vitessKey(c *collate.Collator, buf *collate.Buffer, in []byte) []byte {
	if !utf8.Valid(in) {
		return nil
	}
	buf.Reset()
	k := c.Key(buf, bytes.TrimRight(in, " "))
	return append([]byte{}, k...)
}

func isSurrogate(r rune) bool { return r >= 0xD800 && r <= 0xDFFF }

// ---------------------------------------------------------------------------
// table generation

func checkEnvironment(t *table) {
	if norm.Version != "15.0.0" {
		fail("x/text norm tables are Unicode %s; Vitess vendors the 15.0.0 tables "+
			"(build with a Go toolchain older than go1.27, or pass -allow-other-norm)", norm.Version)
	}
	if t.lookupOffset != 0x15 || t.valuesOffset != 0 {
		fail("language.English resolved to tableIndex{%#x, %#x}, expected {0x15, 0x0}", t.lookupOffset, t.valuesOffset)
	}
	und := extractTable(collate.New(language.Und, collate.Loose))
	if und.lookupOffset != t.lookupOffset || und.valuesOffset != t.valuesOffset {
		fail("English and und tables differ")
	}
}

type generated struct {
	stage1  []uint16
	stage2  []uint32
	pool    []byte
	props   [][4]uint32 // cp, leadCCC, trailCCC, nLead
	counts  map[string]int
	elemsOf []uint32 // per code point, after rewriting
}

func nfdNLead(p norm.Properties) uint32 {
	// Properties.nLeadingNonStarters is unexported; read the field.
	return uint32(reflect.ValueOf(p).FieldByName("nLead").Uint())
}

func generate(t *table) *generated {
	g := &generated{counts: map[string]int{}}
	g.elemsOf = make([]uint32, nRunes)
	poolIndex := map[string]uint32{}
	var buf [4]byte
	for r := rune(0); r < nRunes; r++ {
		if isSurrogate(r) {
			continue
		}
		n := utf8.EncodeRune(buf[:], r)
		ce, sz := t.lookup(buf[:n])
		if sz != n {
			fail("trie lookup of %U consumed %d of %d bytes", r, sz, n)
		}
		switch {
		case ce == 0:
			if r >= 0xAC00 && r <= 0xD7A3 {
				g.counts["hangul"]++
				// The port looks the jamo up raw: they must be plain elements.
				for _, j := range []rune(norm.NFD.String(string(r))) {
					jn := utf8.EncodeRune(buf[:], j)
					jce, _ := t.lookup(buf[:jn])
					if jce == 0 || jce > maxCE {
						fail("jamo %U of %U has a special element %#x", j, r, jce)
					}
				}
			} else if unicode.Is(unicode.Ideographic, r) {
				if (r >= 0x4E00 && r <= 0x9FFF) || (r >= 0xF900 && r <= 0xFAFF) {
					ce = markerCommonIdeo
				} else {
					ce = markerRareIdeo
				}
				g.counts["implicit_ideographic"]++
			} else {
				g.counts["implicit_other"]++
			}
		case ce <= maxCE:
			g.counts["normal"]++
		case ce <= maxContract:
			g.counts["contraction_start"]++
		case ce <= maxExpand:
			g.counts["expansion"]++
			if t.ExpandElem[uint16(ce)] == 0 {
				fail("empty expansion for %U", r)
			}
		default:
			g.counts["decompose"]++
			d := norm.NFKD.PropertiesString(string(r)).Decomposition()
			if len(d) == 0 || len(d) > 255 {
				fail("bad NFKD decomposition for %U: %q", r, d)
			}
			off, ok := poolIndex[string(d)]
			if !ok {
				off = uint32(len(g.pool))
				poolIndex[string(d)] = off
				g.pool = append(g.pool, byte(len(d)))
				g.pool = append(g.pool, d...)
			}
			if off >= 1<<24 {
				fail("decomposition pool too large")
			}
			ce = minDecomp | off
		}
		g.elemsOf[r] = ce

		p := norm.NFD.PropertiesString(string(r))
		if p.Size() != n {
			fail("NFD properties size of %U is %d", r, p.Size())
		}
		lead, trail, nlead := uint32(p.LeadCCC()), uint32(p.TrailCCC()), nfdNLead(p)
		if lead != 0 || trail != 0 || nlead != 0 {
			g.props = append(g.props, [4]uint32{uint32(r), lead, trail, nlead})
		}
	}
	for _, e := range t.ContractElem {
		if e > maxExpand {
			fail("contraction element %#x is neither normal nor expansion", e)
		}
	}
	// Two-stage table, deduplicated blocks of 64 code points.
	blocks := map[string]uint16{}
	g.stage1 = make([]uint16, nRunes/blockSize)
	for b := 0; b < nRunes/blockSize; b++ {
		blk := g.elemsOf[b*blockSize : (b+1)*blockSize]
		key := fmt.Sprint(blk)
		idx, ok := blocks[key]
		if !ok {
			if len(blocks) >= 0xFFFF {
				fail("too many blocks")
			}
			idx = uint16(len(blocks))
			blocks[key] = idx
			g.stage2 = append(g.stage2, blk...)
		}
		g.stage1[b] = idx
	}
	return g
}

// The file is "SGULCOL1" followed by a zlib stream of:
//
//	u32 metaLen, meta (JSON, UTF-8), padded to 4 bytes
//	u32 counts: n_stage1, n_stage2, n_expand, n_contract, n_ctentries,
//	            n_pool, n_props, max_segment_size
//	u16 stage1[n_stage1] (padded to 4 bytes)
//	u32 stage2[n_stage2], u32 expand[n_expand], u32 contract[n_contract]
//	u8  ctentries[4*n_ctentries] (L, H, N, I)
//	u8  pool[n_pool] (padded to 4 bytes)
//	props[n_props], each 2 u32: cp, leadCCC | trailCCC << 8 | nLead << 16
//
// all little-endian.
func writeTable(path string, t *table, g *generated) {
	meta := map[string]any{
		"format":           "shardgate unicode_loose collation table v1",
		"source":           "golang.org/x/text/collate " + xtextVersion + ", collate.New(language.English, collate.Loose) = root table tableIndex{0x15,0x0}",
		"x_text_version":   xtextVersion,
		"collate_unicode":  collate.UnicodeVersion,
		"collate_cldr":     collate.CLDRVersion,
		"norm_unicode":     norm.Version,
		"go_unicode":       unicode.Version,
		"go_version":       runtime.Version(),
		"block_size":       blockSize,
		"generator":        "scripts/unicode_weights (go run . -table ...)",
		"implicit_markers": map[string]string{"0xFF000001": "r+0x10000", "0xFF000002": "r+0x20000", "0": "r+0x50000 (Hangul: NFD jamo)"},
	}
	mj, _ := json.Marshal(meta)
	var p bytes.Buffer
	le := binary.LittleEndian
	pad := func() {
		for p.Len()%4 != 0 {
			p.WriteByte(0)
		}
	}
	w32 := func(v uint32) { _ = binary.Write(&p, le, v) }
	w32(uint32(len(mj)))
	p.Write(mj)
	pad()
	for _, v := range []int{len(g.stage1), len(g.stage2), len(t.ExpandElem), len(t.ContractElem),
		len(t.ContractTries), len(g.pool), len(g.props), norm.MaxSegmentSize} {
		w32(uint32(v))
	}
	_ = binary.Write(&p, le, g.stage1)
	pad()
	_ = binary.Write(&p, le, g.stage2)
	_ = binary.Write(&p, le, t.ExpandElem)
	_ = binary.Write(&p, le, t.ContractElem)
	for _, e := range t.ContractTries {
		p.Write(e[:])
	}
	p.Write(g.pool)
	pad()
	for _, pr := range g.props {
		w32(pr[0])
		w32(pr[1] | pr[2]<<8 | pr[3]<<16)
	}
	var out bytes.Buffer
	out.WriteString("SGULCOL1")
	zw, _ := zlib.NewWriterLevel(&out, zlib.BestCompression)
	zw.Write(p.Bytes())
	zw.Close()
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		fail("%v", err)
	}
	fmt.Fprintf(os.Stderr, "wrote %s: %d bytes (%d uncompressed); stage1 %d, stage2 %d (%d blocks), expand %d, "+
		"contract %d, ct entries %d, pool %d, props %d; counts %v\n", path, out.Len(), p.Len(), len(g.stage1),
		len(g.stage2), len(g.stage2)/blockSize, len(t.ExpandElem), len(t.ContractElem), len(t.ContractTries),
		len(g.pool), len(g.props), g.counts)
}

// ---------------------------------------------------------------------------
// cross-check corpora

type corpusEntry struct {
	Hex string `json:"in"`            // input bytes, hex
	Key string `json:"key,omitempty"` // expected key, hex
	Bad bool   `json:"invalid,omitempty"`
}

// contractions enumerates every byte string accepted by the contraction trie
// for a starter (the full contraction texts, starter included).
func contractions(t *table, starter []byte, ce uint32) [][]byte {
	n := int(ce & 0xF)
	index := int((ce >> 4) & 0xFFF)
	var out [][]byte
	var walk func(base, n int, prefix []byte)
	walk = func(base, n int, prefix []byte) {
		for i := 0; i < n; i++ {
			e := t.ContractTries[base+i]
			L, H, N, I := e[0], e[1], e[2], e[3]
			if N != 0 {
				s := append(append([]byte{}, prefix...), L)
				if I != 0xFF && utf8.Valid(s) {
					out = append(out, s)
				}
				walk(base+int(H)+n, int(N), s)
			} else {
				for c := int(L); c <= int(H); c++ {
					s := append(append([]byte{}, prefix...), byte(c))
					if utf8.Valid(s) {
						out = append(out, s)
					}
				}
			}
		}
	}
	walk(index, n, append([]byte{}, starter...))
	return out
}

type corpusBuilder struct {
	t       *table
	g       *generated
	c       *collate.Collator
	buf     collate.Buffer
	entries []corpusEntry
	seen    map[string]bool
}

func (b *corpusBuilder) add(s []byte) {
	if b.seen[string(s)] {
		return
	}
	b.seen[string(s)] = true
	e := corpusEntry{Hex: hex.EncodeToString(s)}
	if !utf8.Valid(s) {
		e.Bad = true
	} else {
		e.Key = hex.EncodeToString(vitessKey(b.c, &b.buf, s))
	}
	b.entries = append(b.entries, e)
}

// pools of interesting code points for random strings
func (b *corpusBuilder) pools() map[string][]rune {
	pools := map[string][]rune{}
	for r := rune(0); r < nRunes; r++ {
		if isSurrogate(r) {
			continue
		}
		ce := b.g.elemsOf[r]
		switch {
		case ce > maxCE && ce <= maxContract:
			pools["contract"] = append(pools["contract"], r)
		case ce > maxContract && ce <= maxExpand:
			pools["expand"] = append(pools["expand"], r)
		case ce >= minDecomp && ce < markerCommonIdeo:
			pools["decompose"] = append(pools["decompose"], r)
		}
		if ce != 0 && ce <= maxCE && (ce&0xA0000000 == 0x80000000 || ce&0xE0000000 == 0xA0000000) {
			pools["ccc_elem"] = append(pools["ccc_elem"], r)
		}
	}
	for _, pr := range b.g.props {
		pools["nonstarter"] = append(pools["nonstarter"], rune(pr[0]))
	}
	for r := rune(0x20); r < 0x250; r++ {
		pools["latin"] = append(pools["latin"], r)
	}
	for _, r := range "\t\n \u00a0\u200b\u200d\u200f\u3000" {
		pools["space"] = append(pools["space"], r)
	}
	for r := rune(0xAC00); r < 0xAC00+400; r++ {
		pools["hangul"] = append(pools["hangul"], r)
	}
	for _, r := range []rune{0x4E00, 0x4E01, 0x9FCC, 0x9FFF, 0x3400, 0x4DB5, 0xF900, 0xFA0E, 0xFAFF, 0x20000, 0x2A6D6,
		0x2B740, 0x2F800, 0x30000, 0xE000, 0xF0000, 0x10FFFF, 0xFFFF, 0x0378, 0x1F600} {
		pools["implicit"] = append(pools["implicit"], r)
	}
	// Thai/Lao prevowels and Tibetan: classic contraction material.
	for r := rune(0x0E00); r < 0x0F00; r++ {
		pools["thai_lao"] = append(pools["thai_lao"], r)
	}
	for r := rune(0x0F00); r < 0x0FD0; r++ {
		pools["tibetan"] = append(pools["tibetan"], r)
	}
	return pools
}

func (b *corpusBuilder) random(rng *rand.Rand, count int) {
	pools := b.pools()
	names := make([]string, 0, len(pools))
	for k := range pools {
		names = append(names, k)
	}
	sort.Strings(names)
	var conts [][]byte
	for r := rune(0); r < nRunes; r++ {
		if ce := b.g.elemsOf[r]; ce > maxCE && ce <= maxContract {
			conts = append(conts, contractions(b.t, []byte(string(r)), ce)...)
		}
	}
	for i := 0; i < count; i++ {
		var s []byte
		n := 1 + rng.Intn(10)
		for j := 0; j < n; j++ {
			switch x := rng.Intn(20); {
			case x < 3 && len(conts) > 0:
				s = append(s, conts[rng.Intn(len(conts))]...)
			case x < 4:
				s = utf8.AppendRune(s, rune(rng.Intn(nRunes)))
			case x < 5:
				s = append(s, ' ')
			default:
				p := pools[names[rng.Intn(len(names))]]
				s = utf8.AppendRune(s, p[rng.Intn(len(p))])
			}
		}
		// no surrogates: AppendRune writes U+FFFD for them, which is fine
		if rng.Intn(40) == 0 { // some invalid UTF-8
			pos := rng.Intn(len(s) + 1)
			s = append(s[:pos], append([]byte{0xC3 + byte(rng.Intn(3))*0x1D}, s[pos:]...)...)
		}
		b.add(s)
	}
}

// edges adds strings that drive the rare paths of the algorithm: long runs of
// combining marks (Iter's 30-mark limit, FirstBoundary's stream-safe
// overflow), marks out of canonical order (reordering) and marks inside and
// after contractions (discontiguous matches). every picks the contractions.
func (b *corpusBuilder) edges(every int) {
	fillers := []string{
		strings.Repeat("\u0301", 35), strings.Repeat("\u0316\u0301", 20), strings.Repeat("\u0334", 31),
		"\u05b0\u05b1\u05b2\u05b3\u05b4\u05b5\u05b6\u05b7\u05b8\u05b9\u05bb\u05bc\u05bd\u05bf\u05c1\u05c2",
		strings.Repeat("\u0f71", 31), "\u0323\u0301\u0308", "\u0301\u0323", "\u0308\u0323\u0316\u0301",
		strings.Repeat("\u0f72\u0f71", 16), "\u0f74\u0f71\u0f80", "\u0e48\u0e38", "\u0344\u0301",
	}
	for _, f := range fillers {
		for _, base := range []string{"", "a", "A\u030a", "\u0438", "\u0e40\u0e01", "\u0fb2", "\uac00", "\u4e00"} {
			b.add([]byte(base + f))
			b.add([]byte(base + f + "b"))
		}
	}
	k := 0
	for r := rune(0); r < nRunes; r++ {
		ce := b.g.elemsOf[r]
		if ce <= maxCE || ce > maxContract {
			continue
		}
		for _, s := range contractions(b.t, []byte(string(r)), ce) {
			if k++; k%every != 0 {
				continue
			}
			str := string(s)
			first := string([]rune(str)[:1])
			rest := strings.TrimPrefix(str, first)
			for _, f := range fillers {
				b.add([]byte(first + f + rest))
				b.add([]byte(str + f))
			}
		}
	}
}

func writeCorpus(path string, entries []corpusEntry) {
	var out bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&out, gzip.BestCompression)
	zw.Header.ModTime = zw.Header.ModTime.Truncate(0) // reproducible
	enc := json.NewEncoder(zw)
	_ = enc.Encode(map[string]any{
		"source":  "golang.org/x/text " + xtextVersion + " collate.New(language.English, collate.Loose).Key after Vitess normalize (TrimRight ' ', invalid UTF-8 -> error)",
		"go":      runtime.Version(),
		"entries": entries,
	})
	zw.Close()
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		fail("%v", err)
	}
	fmt.Fprintf(os.Stderr, "wrote %s: %d entries, %d bytes\n", path, len(entries), out.Len())
}

// keys prints the key and md5 for the short vectors and golden texts.
func keys(path string) {
	raw, err := os.ReadFile(path)
	if err != nil {
		fail("%v", err)
	}
	var doc struct {
		Vindexes map[string]json.RawMessage `json:"vindexes"`
		Golden   struct {
			Cases []struct {
				Input string `json:"input"`
				MD5   string `json:"unicode_loose_md5_hex"`
			} `json:"cases"`
		} `json:"unicode_loose_golden"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		fail("%v", err)
	}
	c := newCollator()
	var buf collate.Buffer
	ok, bad := 0, 0
	check := func(label, in, want string) {
		k := vitessKey(c, &buf, []byte(in))
		sum := md5.Sum(k)
		got := hex.EncodeToString(sum[:])
		status := "ok"
		if got != want {
			status = "MISMATCH"
			bad++
		} else {
			ok++
		}
		short := in
		if len(short) > 30 {
			short = short[:30] + "..."
		}
		fmt.Printf("%-8s %-10s md5=%s key[%d]=%s %q\n", status, label, got, len(k),
			hex.EncodeToString(k[:min(len(k), 24)]), short)
	}
	var short []struct {
		Input *string `json:"input"`
		KSID  string  `json:"keyspace_id_hex"`
	}
	if err := json.Unmarshal(doc.Vindexes["unicode_loose_md5"], &short); err != nil {
		fail("%v", err)
	}
	for _, v := range short {
		in := ""
		if v.Input != nil {
			in = *v.Input
		}
		check("short", in, v.KSID)
	}
	for i, g := range doc.Golden.Cases {
		check(fmt.Sprintf("golden%02d", i), g.Input, g.MD5)
	}
	fmt.Printf("x/text %s: %d match, %d mismatch\n", xtextVersion, ok, bad)
}

func main() {
	tablePath := flag.String("table", "", "write the binary weight table here")
	corpusPath := flag.String("corpus", "", "write a gzipped JSON cross-check corpus of random strings here")
	fullPath := flag.String("fullcheck", "", "write an exhaustive cross-check corpus (every code point, every contraction, with marks) here")
	n := flag.Int("n", 4000, "random strings in -corpus")
	seed := flag.Int64("seed", 20240601, "random seed for -corpus")
	keysPath := flag.String("keys", "", "print keys/md5 for the vectors JSON (short vectors and golden texts)")
	allowNorm := flag.Bool("allow-other-norm", false, "do not insist on the Unicode 15.0.0 norm tables")
	flag.Parse()

	c := newCollator()
	t := extractTable(c)
	if !*allowNorm {
		checkEnvironment(t)
	}
	g := generate(t)
	if *tablePath != "" {
		writeTable(*tablePath, t, g)
	}
	if *corpusPath != "" {
		b := &corpusBuilder{t: t, g: g, c: c, seen: map[string]bool{}}
		for _, s := range []string{"", " ", "Test", "TEST", "Te\u0301st", "T\u00e9st", "B\u00e9st", "Test ", " Test",
			"Test\t", "T\u00e9stLooong", "T", "10", "20", "30", "40"} {
			b.add([]byte(s))
		}
		b.edges(25)
		b.random(rand.New(rand.NewSource(*seed)), *n)
		writeCorpus(*corpusPath, b.entries)
	}
	if *fullPath != "" {
		b := &corpusBuilder{t: t, g: g, c: c, seen: map[string]bool{}}
		for r := rune(0); r < nRunes; r++ {
			if !isSurrogate(r) {
				b.add([]byte(string(r)))
			}
		}
		marks := []string{"\u0301", "\u0323", "\u0308\u0301", "\u0344", "\u0f71", "\u0f72", "\u0f80", "\u0334", "\u05b4"}
		for r := rune(0); r < nRunes; r++ {
			if ce := g.elemsOf[r]; ce > maxCE && ce <= maxContract {
				for _, s := range contractions(t, []byte(string(r)), ce) {
					b.add(s)
					str := string(s)
					first := string([]rune(str)[:1])
					rest := strings.TrimPrefix(str, first)
					for _, m := range marks {
						b.add([]byte(first + m + rest)) // discontiguous candidate
						b.add([]byte(str + m))
						b.add([]byte(str + "a"))
					}
				}
			}
		}
		b.edges(1)
		b.random(rand.New(rand.NewSource(*seed+1)), *n*10)
		writeCorpus(*fullPath, b.entries)
	}
	if *keysPath != "" {
		keys(*keysPath)
	}
	if *tablePath == "" && *corpusPath == "" && *fullPath == "" && *keysPath == "" {
		flag.Usage()
		os.Exit(2)
	}
}
