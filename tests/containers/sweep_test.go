package containers

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/moby/moby/client"
)

// staleAfter is when an earlier run's resources are surely orphans: longer
// than any run may take (scripts/test.sh gives the suite 20 minutes).
const staleAfter = 45 * time.Minute

// sweepStale removes what an earlier run left behind because it never got
// to its t.Cleanup (killed by go test's -timeout, or by hand): the suite's
// containers, networks, volumes and images older than staleAfter. Younger
// ones may belong to a run going on right now on this shared machine, and
// are left alone.
func sweepStale(ctx context.Context, c client.APIClient) []string {
	cutoff := time.Now().Add(-staleAfter)
	var removed []string
	label := make(client.Filters).Add("label", "dialstream.it")

	if cs, err := c.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: label}); err == nil {
		for _, ct := range cs.Items {
			if time.Unix(ct.Created, 0).Before(cutoff) {
				if _, err := c.ContainerRemove(ctx, ct.ID, client.ContainerRemoveOptions{Force: true}); err == nil {
					removed = append(removed, "container "+strings.Join(ct.Names, ","))
				}
			}
		}
	}
	if ns, err := c.NetworkList(ctx, client.NetworkListOptions{Filters: label}); err == nil {
		for _, n := range ns.Items {
			if n.Created.Before(cutoff) {
				if _, err := c.NetworkRemove(ctx, n.ID, client.NetworkRemoveOptions{}); err == nil {
					removed = append(removed, "network "+n.Name)
				}
			}
		}
	}
	vols := make(client.Filters).Add("name", "dsit-").Add("dangling", "true")
	if vs, err := c.VolumeList(ctx, client.VolumeListOptions{Filters: vols}); err == nil {
		for _, v := range vs.Items {
			at, err := time.Parse(time.RFC3339, v.CreatedAt)
			if err == nil && at.Before(cutoff) && strings.HasPrefix(v.Name, "dsit-") {
				if _, err := c.VolumeRemove(ctx, v.Name, client.VolumeRemoveOptions{}); err == nil {
					removed = append(removed, "volume "+v.Name)
				}
			}
		}
	}
	imgs := make(client.Filters).Add("reference", "dialstream-it", "dialstream-it-livekit")
	if is, err := c.ImageList(ctx, client.ImageListOptions{Filters: imgs}); err == nil {
		for _, im := range is.Items {
			if time.Unix(im.Created, 0).Before(cutoff) {
				if _, err := c.ImageRemove(ctx, im.ID, client.ImageRemoveOptions{Force: true, PruneChildren: true}); err == nil {
					removed = append(removed, fmt.Sprintf("image %v", im.RepoTags))
				}
			}
		}
	}
	return removed
}
