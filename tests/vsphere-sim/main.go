// Command vsphere-sim runs govmomi's vSphere simulator (vcsim) for Homeward's
// integration tests: a vCenter (-model vpx) or a standalone ESXi host
// (-model esx) on 127.0.0.1 over plain HTTP, with exactly one admin account
// and one read-only account.
//
// Once listening it prints one JSON line on stdout (URL, datastore backing
// directories, model facts) and serves until SIGINT/SIGTERM or until its
// stdin reaches EOF, so a test that dies without stopping it never leaves an
// orphan behind.
//
// The simulator of govmomi 0.24 knows a single login and grants every
// privilege to everyone. This driver adds what the tests need in front of it:
//   - an HTTP gate that accepts exactly the two accounts at Login (anything
//     else gets the simulator's own InvalidLogin fault) and refuses the
//     mutating methods listed in mutatingPrivilege to read-only sessions with
//     a NoPermission fault;
//   - an AuthorizationManager that answers privilege queries from each
//     account's role (Admin or ReadOnly) and lists both root permissions.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"encoding/xml"
	"flag"
	"fmt"
	"io"
	"io/ioutil"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// account is one login the simulator accepts, with the role it holds on the
// root folder (propagating to everything).
type account struct {
	user, password, role string
}

func main() {
	modelName := flag.String("model", "vpx", "vpx (vCenter) or esx (standalone host)")
	dir := flag.String("dir", "", "directory under which datastores are backed (default: the system temp dir)")
	// Credentials may come from the environment so that they do not show in
	// the process list; a flag overrides its variable.
	adminFlag := flag.String("admin", envOr("VSPHERE_SIM_ADMIN", "administrator@vsphere.local:admin-pass"),
		"USER:PASS of the account with the Admin role (default $VSPHERE_SIM_ADMIN)")
	readonlyFlag := flag.String("readonly", envOr("VSPHERE_SIM_READONLY", "reader@vsphere.local:reader-pass"),
		"USER:PASS of the account with the ReadOnly role (default $VSPHERE_SIM_READONLY)")
	flag.Parse()

	if err := run(*modelName, *dir, *adminFlag, *readonlyFlag); err != nil {
		fmt.Fprintln(os.Stderr, "vsphere-sim:", err)
		os.Exit(1)
	}
}

func run(modelName, dir, adminFlag, readonlyFlag string) error {
	admin, err := parseAccount(adminFlag, "Admin")
	if err != nil {
		return fmt.Errorf("-admin: %w", err)
	}
	readonly, err := parseAccount(readonlyFlag, "ReadOnly")
	if err != nil {
		return fmt.Errorf("-readonly: %w", err)
	}
	if admin.user == readonly.user {
		return fmt.Errorf("-admin and -readonly name the same user")
	}
	accounts := []account{admin, readonly}

	var model *simulator.Model
	switch modelName {
	case "vpx":
		model = simulator.VPX()
	case "esx":
		model = simulator.ESX()
	default:
		return fmt.Errorf("-model must be vpx or esx, not %q", modelName)
	}

	// The simulator backs each datastore with ioutil.TempDir("", ...), so
	// TMPDIR decides where the backing directories go.
	if dir != "" {
		if err := os.Setenv("TMPDIR", dir); err != nil {
			return err
		}
	}
	if err := model.Create(); err != nil {
		return fmt.Errorf("creating the %s model: %w", modelName, err)
	}
	defer model.Remove()

	installAuthorization(accounts)

	// No Listen.User: the simulator then takes any non-empty login, and the
	// gate below narrows that to exactly our two accounts.
	model.Service.Listen = nil
	server := model.Service.NewServer()
	defer server.Close()
	// NewServer has already started serving, but nobody knows the port until
	// the JSON line below is printed, so no request can race this swap.
	server.Config.Handler = newGate(server.Config.Handler, accounts)

	if err := printReady(server, modelName); err != nil {
		return err
	}
	waitForStop()
	return nil
}

func envOr(name, fallback string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return fallback
}

func parseAccount(text, role string) (account, error) {
	i := strings.IndexByte(text, ':')
	if i <= 0 || i == len(text)-1 {
		return account{}, fmt.Errorf("want USER:PASS with both parts non-empty")
	}
	return account{user: text[:i], password: text[i+1:], role: role}, nil
}

// printReady writes the one JSON line the test harness waits for.
func printReady(server *simulator.Server, modelName string) error {
	datastores := map[string]string{}
	for _, e := range simulator.Map.All("Datastore") {
		ds := e.(*simulator.Datastore)
		datastores[ds.Name] = ds.Info.GetDatastoreInfo().Url
	}
	about := simulator.Map.Get(vim25.ServiceInstance).(*simulator.ServiceInstance).Content.About
	ready := map[string]interface{}{
		"url":          "http://" + server.URL.Host + server.URL.Path,
		"model":        modelName,
		"api_type":     about.ApiType,
		"api_version":  about.ApiVersion,
		"datastores":   datastores,
		"vms":          names("VirtualMachine"),
		"hosts":        names("HostSystem"),
		"datacenters":  names("Datacenter"),
		"instanceUuid": about.InstanceUuid,
	}
	line, err := json.Marshal(ready)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(os.Stdout, "%s\n", line)
	return err
}

func names(kind string) []string {
	out := []string{}
	for _, e := range simulator.Map.All(kind) {
		out = append(out, e.Entity().Name)
	}
	return out
}

// waitForStop returns on SIGINT, SIGTERM or EOF on stdin (the parent died or
// closed the pipe).
func waitForStop() {
	done := make(chan struct{}, 2)
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-signals
		done <- struct{}{}
	}()
	go func() {
		_, _ = io.Copy(ioutil.Discard, bufio.NewReader(os.Stdin))
		done <- struct{}{}
	}()
	<-done
}

// --- privileges by role -----------------------------------------------------

// roleAuthorization wraps the simulator's AuthorizationManager (which grants
// everything to everyone) so privilege queries answer from the caller's role.
type roleAuthorization struct {
	*simulator.AuthorizationManager
	roleOf     map[string]string
	privileges map[string]map[string]bool // role name -> privilege set
}

func installAuthorization(accounts []account) {
	content := simulator.Map.Get(vim25.ServiceInstance).(*simulator.ServiceInstance).Content
	inner := simulator.Map.Get(*content.AuthorizationManager).(*simulator.AuthorizationManager)
	roles := object.AuthorizationRoleList(inner.RoleList)

	auth := &roleAuthorization{
		AuthorizationManager: inner,
		roleOf:               map[string]string{},
		privileges:           map[string]map[string]bool{},
	}
	var permissions []types.Permission
	for _, a := range accounts {
		role := roles.ByName(a.role)
		set := map[string]bool{}
		for _, p := range role.Privilege {
			set[p] = true
		}
		auth.roleOf[a.user] = a.role
		auth.privileges[a.role] = set
		permissions = append(permissions, types.Permission{
			Entity:    &content.RootFolder,
			Principal: a.user,
			RoleId:    role.RoleId,
			Propagate: true,
		})
	}
	// Keep the simulator's default root/admin permissions and add ours.
	existing := inner.RetrieveEntityPermissions(&types.RetrieveEntityPermissions{Entity: content.RootFolder})
	if body, ok := existing.(*methods.RetrieveEntityPermissionsBody); ok && body.Res != nil {
		permissions = append(body.Res.Returnval, permissions...)
	}
	inner.SetEntityPermissions(&types.SetEntityPermissions{Entity: content.RootFolder, Permission: permissions})
	simulator.Map.Put(auth)
}

func (m *roleAuthorization) granted(user string) map[string]bool {
	return m.privileges[m.roleOf[user]]
}

func sessionUser(ctx *simulator.Context) string {
	if ctx.Session == nil {
		return ""
	}
	return ctx.Session.UserName
}

func (m *roleAuthorization) HasPrivilegeOnEntities(ctx *simulator.Context, req *types.HasPrivilegeOnEntities) soap.HasFault {
	return &methods.HasPrivilegeOnEntitiesBody{Res: &types.HasPrivilegeOnEntitiesResponse{
		Returnval: m.entityPrivileges(sessionUser(ctx), req.Entity, req.PrivId),
	}}
}

func (m *roleAuthorization) HasUserPrivilegeOnEntities(req *types.HasUserPrivilegeOnEntities) soap.HasFault {
	return &methods.HasUserPrivilegeOnEntitiesBody{Res: &types.HasUserPrivilegeOnEntitiesResponse{
		Returnval: m.entityPrivileges(req.UserName, req.Entities, req.PrivId),
	}}
}

func (m *roleAuthorization) HasPrivilegeOnEntity(ctx *simulator.Context, req *types.HasPrivilegeOnEntity) soap.HasFault {
	set := m.granted(sessionUser(ctx))
	out := make([]bool, len(req.PrivId))
	for i, id := range req.PrivId {
		out[i] = set[id]
	}
	return &methods.HasPrivilegeOnEntityBody{Res: &types.HasPrivilegeOnEntityResponse{Returnval: out}}
}

func (m *roleAuthorization) FetchUserPrivilegeOnEntities(req *types.FetchUserPrivilegeOnEntities) soap.HasFault {
	var held []string
	for id := range m.granted(req.UserName) {
		held = append(held, id)
	}
	var out []types.UserPrivilegeResult
	for _, e := range req.Entities {
		out = append(out, types.UserPrivilegeResult{Entity: e, Privileges: held})
	}
	return &methods.FetchUserPrivilegeOnEntitiesBody{Res: &types.FetchUserPrivilegeOnEntitiesResponse{Returnval: out}}
}

func (m *roleAuthorization) entityPrivileges(user string, entities []types.ManagedObjectReference, ids []string) []types.EntityPrivilege {
	set := m.granted(user)
	var out []types.EntityPrivilege
	for _, e := range entities {
		p := types.EntityPrivilege{Entity: e}
		for _, id := range ids {
			p.PrivAvailability = append(p.PrivAvailability, types.PrivilegeAvailability{PrivId: id, IsGranted: set[id]})
		}
		out = append(out, p)
	}
	return out
}

// --- the HTTP gate ----------------------------------------------------------

// mutatingPrivilege lists the methods a read-only session is refused, with
// the privilege vCenter names in its NoPermission fault. Methods not listed
// are passed through (the simulator itself checks no privileges).
var mutatingPrivilege = map[string]string{
	"PowerOnVM_Task":               "VirtualMachine.Interact.PowerOn",
	"PowerOffVM_Task":              "VirtualMachine.Interact.PowerOff",
	"ResetVM_Task":                 "VirtualMachine.Interact.Reset",
	"SuspendVM_Task":               "VirtualMachine.Interact.Suspend",
	"ShutdownGuest":                "VirtualMachine.Interact.PowerOff",
	"RebootGuest":                  "VirtualMachine.Interact.Reset",
	"CreateSnapshot_Task":          "VirtualMachine.State.CreateSnapshot",
	"CreateSnapshotEx_Task":        "VirtualMachine.State.CreateSnapshot",
	"RemoveSnapshot_Task":          "VirtualMachine.State.RemoveSnapshot",
	"RemoveAllSnapshots_Task":      "VirtualMachine.State.RemoveSnapshot",
	"RevertToSnapshot_Task":        "VirtualMachine.State.RevertToSnapshot",
	"RevertToCurrentSnapshot_Task": "VirtualMachine.State.RevertToSnapshot",
	"RenameSnapshot":               "VirtualMachine.State.RenameSnapshot",
	"ReconfigVM_Task":              "VirtualMachine.Config.Settings",
	"CreateVM_Task":                "VirtualMachine.Inventory.Create",
	"RegisterVM_Task":              "VirtualMachine.Inventory.Register",
	"UnregisterVM":                 "VirtualMachine.Inventory.Unregister",
	"Destroy_Task":                 "VirtualMachine.Inventory.Delete",
	"CloneVM_Task":                 "VirtualMachine.Provisioning.Clone",
	"RelocateVM_Task":              "Resource.ColdMigrate",
	"MarkAsTemplate":               "VirtualMachine.Provisioning.MarkAsTemplate",
	"AddLicense":                   "Global.Licenses",
	"RemoveLicense":                "Global.Licenses",
	"UpdateLicense":                "Global.Licenses",
	"SetEntityPermissions":         "Authorization.ModifyPermissions",
	"AddAuthorizationRole":         "Authorization.ModifyRoles",
	"CopyVirtualDisk_Task":         "Datastore.FileManagement",
	"DeleteDatastoreFile_Task":     "Datastore.FileManagement",
	"MakeDirectory":                "Datastore.FileManagement",
}

type gate struct {
	next     http.Handler
	accounts []account

	mu       sync.Mutex
	readOnly map[string]bool // session cookie values of read-only logins
}

func newGate(next http.Handler, accounts []account) *gate {
	return &gate{next: next, accounts: accounts, readOnly: map[string]bool{}}
}

func (g *gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || !strings.HasPrefix(r.URL.Path, "/sdk") {
		g.next.ServeHTTP(w, r)
		return
	}
	body, err := ioutil.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "reading the request", http.StatusBadRequest)
		return
	}
	r.Body = ioutil.NopCloser(bytes.NewReader(body))

	method, err := simulator.UnmarshalBody(types.TypeFunc(), body)
	if err != nil {
		g.next.ServeHTTP(w, r) // the simulator reports the bad request itself
		return
	}

	if login, ok := method.Body.(*types.Login); ok {
		g.login(w, r, method, login)
		return
	}

	if privilege, mutating := mutatingPrivilege[method.Name]; mutating && g.isReadOnly(r) {
		writeNoPermission(w, method.This, privilege)
		return
	}
	g.next.ServeHTTP(w, r)
}

func (g *gate) login(w http.ResponseWriter, r *http.Request, method *simulator.Method, login *types.Login) {
	var who *account
	for i := range g.accounts {
		a := &g.accounts[i]
		if login.UserName == a.user && login.Password == a.password {
			who = a
		}
	}
	if who == nil {
		// An empty login makes the simulator answer with its own
		// InvalidLogin fault, exactly as it would for a wrong password.
		empty := soap.Envelope{Body: &methods.LoginBody{Req: &types.Login{This: method.This}}}
		text, err := xml.Marshal(empty)
		if err != nil {
			http.Error(w, "encoding the refused login", http.StatusInternalServerError)
			return
		}
		r.Body = ioutil.NopCloser(bytes.NewReader(text))
		r.ContentLength = int64(len(text))
		g.next.ServeHTTP(w, r)
		return
	}
	g.next.ServeHTTP(w, r)
	if who.role != "ReadOnly" {
		return
	}
	// Remember the session the simulator just handed out.
	cookies := (&http.Response{Header: w.Header()}).Cookies()
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, c := range cookies {
		if c.Name == soap.SessionCookieName {
			g.readOnly[c.Value] = true
		}
	}
}

func (g *gate) isReadOnly(r *http.Request) bool {
	c, err := r.Cookie(soap.SessionCookieName)
	if err != nil {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.readOnly[c.Value]
}

// writeNoPermission answers like vCenter when a session lacks a privilege.
func writeNoPermission(w http.ResponseWriter, this types.ManagedObjectReference, privilege string) {
	var esc = func(s string) string {
		var b bytes.Buffer
		_ = xml.EscapeText(&b, []byte(s))
		return b.String()
	}
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(http.StatusInternalServerError)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenc="http://schemas.xmlsoap.org/soap/encoding/" xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>Permission to perform this operation was denied.</faultstring><detail><NoPermissionFault xmlns="urn:vim25" xsi:type="NoPermission"><object type="%s">%s</object><privilegeId>%s</privilegeId></NoPermissionFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>`,
		esc(this.Type), esc(this.Value), esc(privilege))
}
