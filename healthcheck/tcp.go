package healthcheck

import "context"

// probeTCP passes when the target accepts a TCP connection. It closes the connection at once,
// sending nothing.
func probeTCP(ctx context.Context, c Config, addr string) error {
	conn, err := dial(ctx, addr, c.Port)
	if err != nil {
		return err
	}
	conn.Close()
	return nil
}
