// A real OpenID Connect provider for mlworkshop's sign-in tests, on loopback.
//
// Dex, the provider the issue names first, cannot be had here: the Go module proxy serves only
// github.com/dexidp/dex v0.6.1 and v2.13.0+incompatible (2018); every current version answers
// 403 "This module version is not available". This program is zitadel/oidc's OpenID Provider
// (package op, an OpenID Certified implementation: discovery, authorization code flow, token,
// userinfo, client authentication) with that module's own example storage and login form. It adds
// only what the tests need: users (with a "Groups" field) from a JSON file, one confidential
// client from the environment, and a "groups" claim in userinfo and the ID token.
//
// Environment: PORT, ISSUER (e.g. http://127.0.0.1:PORT/), USERS_FILE, CLIENT_ID, CLIENT_SECRET,
// REDIRECT_URI (comma-separated).
package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// groupStorage is the example storage plus a "groups" claim per user.
type groupStorage struct {
	*storage.Storage
	groups map[string][]string // user ID -> groups
}

func (s *groupStorage) addGroups(userinfo *oidc.UserInfo, subject string) {
	if subject == "" {
		subject = userinfo.Subject
	}
	if groups, ok := s.groups[subject]; ok {
		userinfo.AppendClaims("groups", groups)
	}
}

func (s *groupStorage) SetUserinfoFromRequest(ctx context.Context, userinfo *oidc.UserInfo, token op.IDTokenRequest, scopes []string) error {
	if err := s.Storage.SetUserinfoFromRequest(ctx, userinfo, token, scopes); err != nil {
		return err
	}
	s.addGroups(userinfo, token.GetSubject())
	return nil
}

func (s *groupStorage) SetUserinfoFromToken(ctx context.Context, userinfo *oidc.UserInfo, tokenID, subject, origin string) error {
	if err := s.Storage.SetUserinfoFromToken(ctx, userinfo, tokenID, subject, origin); err != nil {
		return err
	}
	s.addGroups(userinfo, userinfo.Subject)
	return nil
}

func main() {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	port := os.Getenv("PORT")
	issuer := os.Getenv("ISSUER")
	usersFile := os.Getenv("USERS_FILE")

	storage.RegisterClients(
		storage.WebClient(os.Getenv("CLIENT_ID"), os.Getenv("CLIENT_SECRET"), strings.Split(os.Getenv("REDIRECT_URI"), ",")...),
	)
	users, err := storage.StoreFromFile(usersFile)
	if err != nil {
		logger.Error("cannot read users", "file", usersFile, "error", err)
		os.Exit(1)
	}
	raw, _ := os.ReadFile(usersFile)
	var extra map[string]struct{ Groups []string }
	if err := json.Unmarshal(raw, &extra); err != nil {
		logger.Error("cannot read groups", "file", usersFile, "error", err)
		os.Exit(1)
	}
	groups := map[string][]string{}
	for id, user := range extra {
		groups[id] = user.Groups
	}

	store := &groupStorage{Storage: storage.NewStorage(users), groups: groups}
	router := exampleop.SetupServer(issuer, store, logger, false)
	server := &http.Server{Addr: "127.0.0.1:" + port, Handler: router}
	logger.Info("listening", "issuer", issuer)
	if err := server.ListenAndServe(); err != http.ErrServerClosed {
		logger.Error("server stopped", "error", err)
		os.Exit(1)
	}
}
