package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ManifestVersion is the version of the manifest format this package
// writes and the only one it reads.
const ManifestVersion = 1

// ManifestName is the base name of every manifest object.
const ManifestName = "manifest.json"

// Object is one entry of a manifest: a key and what its bytes must be.
type Object struct {
	Key    string `json:"key"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"` // lower-case hex
}

// Manifest lists the objects of one committed unit: a step's shards or a
// checkpoint's files. It is written after all of them and is the only
// thing readers trust: an object that no committed manifest lists does not
// exist for a reader, whatever the store holds.
type Manifest struct {
	Version int    `json:"version"`
	Run     string `json:"run"`
	// Kind is "step" or "checkpoint"; ID is the step number or the
	// checkpoint (policy) version.
	Kind string `json:"kind"`
	ID   string `json:"id"`
	// Objects are sorted by key.
	Objects   []Object  `json:"objects"`
	Committed time.Time `json:"committed"`
}

// Find returns the entry of key.
func (m *Manifest) Find(key string) (Object, bool) {
	i := sort.Search(len(m.Objects), func(i int) bool { return m.Objects[i].Key >= key })
	if i < len(m.Objects) && m.Objects[i].Key == key {
		return m.Objects[i], true
	}
	return Object{}, false
}

var (
	// ErrCommitted means a manifest is already committed at the key:
	// the unit was committed before (by an earlier run of the step).
	ErrCommitted = errors.New("thinkgen/storage: already committed")
	// ErrNotInManifest means a key was read through a manifest that does
	// not list it.
	ErrNotInManifest = errors.New("thinkgen/storage: key is not in the manifest")
)

// ChecksumError reports an object whose bytes do not match its manifest
// entry: truncated, extended, or altered.
type ChecksumError struct {
	Key             string
	Want, Got       int64  // sizes
	WantSum, GotSum string // sha256, hex; GotSum is empty when the size already differs
}

func (e *ChecksumError) Error() string {
	if e.Want != e.Got {
		return fmt.Sprintf("thinkgen/storage: object %s is %d bytes, its manifest says %d", e.Key, e.Got, e.Want)
	}
	return fmt.Sprintf("thinkgen/storage: object %s has sha256 %s, its manifest says %s", e.Key, e.GotSum, e.WantSum)
}

// Batch gathers the objects of one step or checkpoint and commits them
// under one manifest. Its duties, in order:
//
//  1. Put (or Add, or AddVerified) every object; each Put hashes the body
//     and creates the object (create-if-absent: a key is written once, so
//     an object no other writer can replace is verified as it is
//     written); AddVerified reads a reported object through and checks it.
//  2. Commit: every object Added (reported by another writer, unchecked)
//     is read through and its size and sha256 checked, every verified one
//     is checked to still exist with its size, then the manifest is
//     created — last, and only if no manifest is there yet, so a unit
//     commits exactly once.
//  3. On any error before Commit succeeds, drop the batch (or call Abort
//     to delete what it wrote): without a manifest its objects are
//     invisible to readers and [GC] can collect them once a later attempt
//     commits the unit.
type Batch struct {
	store Store
	key   string // of the manifest
	m     Manifest
	put   map[string]bool // keys the batch created (verified on write)
	// verified are the keys whose bytes were checked against their entry
	// (created by the batch, or read through by AddVerified).
	verified map[string]bool
}

// NewBatch starts the unit whose manifest will be written at manifestKey
// (see [StepManifestKey] and [CheckpointManifestKey]).
func NewBatch(s Store, manifestKey, run, kind, id string) *Batch {
	return &Batch{store: s, key: manifestKey, m: Manifest{Version: ManifestVersion, Run: run, Kind: kind, ID: id}, verified: map[string]bool{}}
}

// Put hashes body and writes it under key, and records it in the batch.
func (b *Batch) Put(ctx context.Context, key string, body io.ReadSeeker) (Object, error) {
	obj, err := PutObject(ctx, b.store, key, body)
	if err != nil {
		return Object{}, err
	}
	b.Add(obj)
	if b.put == nil {
		b.put = map[string]bool{}
	}
	b.put[key] = true
	b.verified[key] = true
	return obj, nil
}

// AddVerified reads the object obj names through, checks its size and
// sha256 against obj (a [*ChecksumError] if they differ) and records it:
// Add with the verification done now rather than in Commit.
func (b *Batch) AddVerified(ctx context.Context, obj Object) error {
	if err := Verify(ctx, b.store, obj); err != nil {
		return err
	}
	b.Add(obj)
	b.verified[obj.Key] = true
	return nil
}

// Add records an object written elsewhere, for example by a worker that
// reported its key, size and checksum; Commit verifies the claim.
func (b *Batch) Add(obj Object) {
	delete(b.put, obj.Key)
	delete(b.verified, obj.Key)
	for i := range b.m.Objects {
		if b.m.Objects[i].Key == obj.Key {
			b.m.Objects[i] = obj
			return
		}
	}
	b.m.Objects = append(b.m.Objects, obj)
}

// Commit checks the batch's objects and writes its manifest. It fails with
// an error wrapping ErrCommitted when the unit is already committed, and
// never writes a manifest that lists a missing object or one whose bytes
// differ from its entry (a [*ChecksumError]).
func (b *Batch) Commit(ctx context.Context) (*Manifest, error) {
	m := b.m
	m.Objects = append([]Object(nil), b.m.Objects...)
	sort.Slice(m.Objects, func(i, j int) bool { return m.Objects[i].Key < m.Objects[j].Key })
	for _, obj := range m.Objects {
		if !b.verified[obj.Key] {
			if err := Verify(ctx, b.store, obj); err != nil {
				return nil, fmt.Errorf("commit %s: %w", b.key, err)
			}
			continue
		}
		info, err := b.store.Stat(ctx, obj.Key)
		if err != nil {
			return nil, fmt.Errorf("commit %s: %w", b.key, err)
		}
		if info.Size != obj.Size {
			return nil, fmt.Errorf("commit %s: %w", b.key, &ChecksumError{Key: obj.Key, Want: obj.Size, Got: info.Size})
		}
	}
	m.Committed = time.Now().UTC().Truncate(time.Millisecond)
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("commit %s: %w", b.key, err)
	}
	if err := b.store.Create(ctx, b.key, bytes.NewReader(append(data, '\n'))); err != nil {
		if errors.Is(err, ErrExist) {
			return nil, fmt.Errorf("commit %s: %w", b.key, ErrCommitted)
		}
		return nil, fmt.Errorf("commit %s: %w", b.key, err)
	}
	return &m, nil
}

// Abort deletes the objects the batch created, except any that its unit's
// manifest lists (the batch did commit after all, or another writer's
// commit references them): a late abort never removes committed data.
// Use it for a batch whose Commit did not succeed.
func (b *Batch) Abort(ctx context.Context) error {
	keys := make([]string, 0, len(b.put))
	for key := range b.put {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	m, err := ReadManifest(ctx, b.store, b.key)
	switch {
	case errors.Is(err, ErrNotExist):
		m = &Manifest{}
	case err != nil:
		return fmt.Errorf("abort %s: %w", b.key, err)
	}
	var errs []error
	for _, key := range keys {
		if _, listed := m.Find(key); listed {
			continue
		}
		if err := b.store.Delete(ctx, key); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// PutObject hashes body, creates the object key from it (failing with an
// error wrapping ErrExist if key exists: data objects are written once)
// and returns its manifest entry.
func PutObject(ctx context.Context, s Store, key string, body io.ReadSeeker) (Object, error) {
	if _, err := body.Seek(0, io.SeekStart); err != nil {
		return Object{}, fmt.Errorf("put %s: %w", key, err)
	}
	h := sha256.New()
	n, err := io.Copy(h, body)
	if err != nil {
		return Object{}, fmt.Errorf("put %s: hash: %w", key, err)
	}
	if err := s.Create(ctx, key, body); err != nil {
		return Object{}, err
	}
	return Object{Key: key, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// ReadManifest reads and checks the manifest at key. A missing manifest
// gives an error wrapping ErrNotExist: the unit is not committed.
func ReadManifest(ctx context.Context, s Store, key string) (*Manifest, error) {
	r, err := s.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, MaxManifestBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", key, err)
	}
	return DecodeManifest(key, data)
}

// MaxManifestBytes bounds the size of a manifest.
const MaxManifestBytes = 64 << 20

// DecodeManifest parses and checks the manifest data read from key: its
// version, fields, object keys, sizes and hashes, and the objects' order.
func DecodeManifest(key string, data []byte) (*Manifest, error) {
	if len(data) > MaxManifestBytes {
		return nil, fmt.Errorf("read manifest %s: larger than %d bytes", key, MaxManifestBytes)
	}
	// The version first, so that a newer manifest is reported as such
	// rather than as one with unknown fields.
	var head struct {
		Version int `json:"version"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", key, err)
	}
	if head.Version != ManifestVersion {
		return nil, fmt.Errorf("read manifest %s: version %d, want %d", key, head.Version, ManifestVersion)
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", key, err)
	}
	for i, obj := range m.Objects {
		if err := ValidateKey(obj.Key); err != nil {
			return nil, fmt.Errorf("read manifest %s: objects[%d]: %w", key, i, err)
		}
		if _, err := hex.DecodeString(obj.SHA256); err != nil || len(obj.SHA256) != 64 || obj.Size < 0 {
			return nil, fmt.Errorf("read manifest %s: objects[%d] (%s): bad size or sha256", key, i, obj.Key)
		}
		if i > 0 && m.Objects[i-1].Key >= obj.Key {
			return nil, fmt.Errorf("read manifest %s: objects not sorted or duplicated at %s", key, obj.Key)
		}
	}
	return &m, nil
}

// Fetch returns the object key of the manifest as a local file, after
// checking its size and sha256: a mismatch is a [*ChecksumError] naming
// the key. A local store's object is hashed in place and its open file
// returned; an S3 object is streamed once into an unlinked temporary file
// in tmpDir ("" means os.TempDir()) while it is hashed. Either way nothing
// holds the object in memory, and the caller reads it at random (Arrow IPC
// files need that) and closes it.
func (m *Manifest) Fetch(ctx context.Context, s Store, key, tmpDir string) (*os.File, error) {
	obj, ok := m.Find(key)
	if !ok {
		return nil, fmt.Errorf("fetch %s: %w", key, ErrNotInManifest)
	}
	r, err := s.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("fetch: %w", err)
	}
	f, local := r.(*os.File)
	if !local {
		defer r.Close()
		if f, err = os.CreateTemp(tmpDir, "thinkgen-fetch-*"); err != nil {
			return nil, fmt.Errorf("fetch %s: %w", key, err)
		}
		os.Remove(f.Name()) // gone when closed
	}
	fail := func(err error) (*os.File, error) {
		f.Close()
		return nil, fmt.Errorf("fetch: %w", err)
	}
	h := sha256.New()
	var n int64
	if local {
		n, err = io.Copy(h, io.LimitReader(f, obj.Size+1))
	} else {
		n, err = io.Copy(io.MultiWriter(f, h), io.LimitReader(contextReader{ctx, r}, obj.Size+1))
	}
	if err != nil {
		return fail(fmt.Errorf("%s: %w", key, err))
	}
	if err := check(obj, n, h.Sum(nil)); err != nil {
		return fail(err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fail(err)
	}
	return f, nil
}

// GetJSON decodes the JSON object at key into v. The store's error is
// returned as it is (a missing key wraps ErrNotExist); a decoding error
// names the key.
func GetJSON(ctx context.Context, s Store, key string, v any) error {
	r, err := s.Get(ctx, key)
	if err != nil {
		return err
	}
	defer r.Close()
	if err := json.NewDecoder(r).Decode(v); err != nil {
		return fmt.Errorf("read %s: %w", key, err)
	}
	return nil
}

// Describe reads the object at key through and returns its manifest
// entry: its size and sha256.
func Describe(ctx context.Context, s Store, key string) (Object, error) {
	r, err := s.Get(ctx, key)
	if err != nil {
		return Object{}, err
	}
	defer r.Close()
	h := sha256.New()
	n, err := io.Copy(h, contextReader{ctx, r})
	if err != nil {
		return Object{}, fmt.Errorf("read %s: %w", key, err)
	}
	return Object{Key: key, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// Verify reads the object of obj through and checks its size and sha256.
func Verify(ctx context.Context, s Store, obj Object) error {
	r, err := s.Get(ctx, obj.Key)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	defer r.Close()
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(contextReader{ctx, r}, obj.Size+1))
	if err != nil {
		return fmt.Errorf("verify %s: %w", obj.Key, err)
	}
	return check(obj, n, h.Sum(nil))
}

func check(obj Object, n int64, sum []byte) error {
	if n != obj.Size {
		return &ChecksumError{Key: obj.Key, Want: obj.Size, Got: n}
	}
	if got := hex.EncodeToString(sum); got != obj.SHA256 {
		return &ChecksumError{Key: obj.Key, Want: obj.Size, Got: n, WantSum: obj.SHA256, GotSum: got}
	}
	return nil
}

// Layout. Steps are zero-padded so that listings sort in step order.

// RunPrefix is the prefix of everything of run.
func RunPrefix(run string) string { return "runs/" + run + "/" }

// StepPrefix is the prefix of the objects of one step of run.
func StepPrefix(run string, step int) string { return fmt.Sprintf("runs/%s/steps/%06d/", run, step) }

// StepManifestKey is the key of a step's manifest.
func StepManifestKey(run string, step int) string { return StepPrefix(run, step) + ManifestName }

// AttemptTag names one attempt of a writer: the run's epoch (the
// generation of the controller's run lease, which grows with every
// controller that takes the run over) and the attempt within it. No two
// writers ever share a tag, so keys that carry one never repeat.
func AttemptTag(epoch, attempt int) string { return fmt.Sprintf("e%d-a%d", epoch, attempt) }

// ShardKey is the key of the shard of one attempt of a task of a step:
// kind is "rollout", "reward" or "metrics".
func ShardKey(run string, step int, kind, task string, epoch, attempt int) string {
	return fmt.Sprintf("%s%s/%s-%s.arrow", StepPrefix(run, step), kind, task, AttemptTag(epoch, attempt))
}

// CheckpointPrefix is the prefix of the files of one checkpoint version.
func CheckpointPrefix(run string, version int) string {
	return fmt.Sprintf("runs/%s/checkpoints/%06d/", run, version)
}

// CheckpointFilesPrefix is the prefix under which one attempt (tag, see
// [AttemptTag]) writes the files of a checkpoint version; the version's
// manifest lists the files of the attempt that committed it.
func CheckpointFilesPrefix(run string, version int, tag string) string {
	return CheckpointPrefix(run, version) + tag + "/"
}

// attemptTag matches an [AttemptTag].
var attemptTag = regexp.MustCompile(`^e[0-9]+-a[0-9]+$`)

// CheckpointFile returns the path of a checkpoint object key within its
// version (e.g. "bundle/dit.safetensors"), without the version's prefix
// and the attempt tag that the writer put in front.
func CheckpointFile(run string, version int, key string) (string, bool) {
	rel, ok := strings.CutPrefix(key, CheckpointPrefix(run, version))
	if !ok || rel == "" {
		return "", false
	}
	if tag, rest, ok := strings.Cut(rel, "/"); ok && attemptTag.MatchString(tag) {
		rel = rest
	}
	return rel, rel != ""
}

// CheckpointManifestKey is the key of a checkpoint's manifest.
func CheckpointManifestKey(run string, version int) string {
	return CheckpointPrefix(run, version) + ManifestName
}

// ValidateRun checks that run can name a run: one key segment.
func ValidateRun(run string) error {
	if strings.Contains(run, "/") {
		return &KeyError{run, "a run name must not contain /"}
	}
	return ValidateKey(run)
}

// Unit parses the key of a step's or a checkpoint's manifest
// (runs/<run>/steps/<n>/manifest.json, runs/<run>/checkpoints/<n>/manifest.json)
// into its kind ("steps" or "checkpoints") and number. Other keys — a file
// of that name inside a unit, such as a model bundle's own manifest in a
// checkpoint — give ok false.
func Unit(run, key string) (kind string, n int, ok bool) {
	rel, found := strings.CutPrefix(key, RunPrefix(run))
	parts := strings.Split(rel, "/")
	if !found || len(parts) != 3 || parts[2] != ManifestName || (parts[0] != "steps" && parts[0] != "checkpoints") {
		return "", 0, false
	}
	n, err := strconv.Atoi(parts[1])
	if err != nil {
		return "", 0, false
	}
	return parts[0], n, true
}

// GCOptions tune [GC].
type GCOptions struct {
	// DryRun reports what would be deleted and deletes nothing.
	DryRun bool
	// TempAge is the age past which a local store's temporary file (the
	// partial object of a Put that crashed) is deleted; 0 means
	// DefaultTempAge. A Put in progress keeps writing to its file, so it
	// is younger than any sensible TempAge.
	TempAge time.Duration
	// Checkpoints, when set, are the run's kept checkpoint versions (from
	// its run.json): a committed version up to Checkpoints.Through that is
	// not kept (its deletion was interrupted) is deleted whole.
	Checkpoints *KeptVersions
}

// KeptVersions are the checkpoint versions a run keeps: of the versions
// up to Through (the run's policy version), only those in Kept. Versions
// after Through may be in flight and are never dropped.
type KeptVersions struct {
	Kept    []int
	Through int
}

// drops reports whether the checkpoint version v is to be deleted.
func (k *KeptVersions) drops(v int) bool {
	return k != nil && v <= k.Through && !slices.Contains(k.Kept, v)
}

// DefaultTempAge is GCOptions.TempAge's default.
const DefaultTempAge = time.Hour

// GC deletes the objects of run that a committed unit left unreferenced:
// for every manifest under runs/<run>/, each object beside it or below its
// directory that no manifest of the run lists (outputs of stale attempts,
// leftovers of an aborted write of a unit that was committed later); and,
// with opts.Checkpoints, every object of a committed checkpoint version
// the run no longer keeps, its manifest last. It never touches a
// directory without a manifest, which may be a unit still being written.
// Data goes before manifests, so an interrupted GC leaves every remaining
// object under a manifest, where the next GC finds it. It returns the
// objects deleted (or, with DryRun, to be deleted) in that order, data
// sorted by key, then manifests. In a [*Local] store it also deletes the
// run's temporary files older than opts.TempAge, returned after the
// objects with their paths relative to the store's directory as keys.
func GC(ctx context.Context, s Store, run string, opts GCOptions) ([]ObjectInfo, error) {
	if err := ValidateRun(run); err != nil {
		return nil, fmt.Errorf("gc: %w", err)
	}
	all, err := s.List(ctx, RunPrefix(run))
	if err != nil {
		return nil, fmt.Errorf("gc %s: %w", run, err)
	}
	referenced := map[string]bool{}
	var units []string   // directories of manifests, with trailing slash
	var dropped []string // directories of checkpoint versions not kept
	for _, info := range all {
		kind, n, ok := Unit(run, info.Key)
		if !ok {
			continue
		}
		dir := path.Dir(info.Key) + "/"
		units = append(units, dir)
		if kind == "checkpoints" && opts.Checkpoints.drops(n) {
			dropped = append(dropped, dir)
			continue
		}
		m, err := ReadManifest(ctx, s, info.Key)
		if err != nil {
			return nil, fmt.Errorf("gc %s: %w", run, err)
		}
		referenced[info.Key] = true
		for _, obj := range m.Objects {
			referenced[obj.Key] = true
		}
	}
	var data, manifests []ObjectInfo
	for _, info := range all {
		if referenced[info.Key] {
			continue
		}
		for _, u := range units {
			if strings.HasPrefix(info.Key, u) {
				if path.Base(info.Key) == ManifestName && slices.Contains(dropped, path.Dir(info.Key)+"/") {
					manifests = append(manifests, info)
				} else {
					data = append(data, info)
				}
				break
			}
		}
	}
	garbage := append(data, manifests...)
	if !opts.DryRun {
		for i, info := range garbage {
			if err := s.Delete(ctx, info.Key); err != nil {
				return garbage[:i], fmt.Errorf("gc %s: %w", run, err)
			}
		}
	}
	if l, ok := s.(*Local); ok {
		age := opts.TempAge
		if age <= 0 {
			age = DefaultTempAge
		}
		temps, err := l.staleTemps(ctx, RunPrefix(run), time.Now().Add(-age), opts.DryRun)
		garbage = append(garbage, temps...)
		if err != nil {
			return garbage, fmt.Errorf("gc %s: %w", run, err)
		}
	}
	return garbage, nil
}
