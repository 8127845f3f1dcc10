package deploy_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// These tests read the Bicep text (comments removed). They pin the
// properties a review would look for; Azure's own validation of the
// templates is `azd provision --preview` (see the README).

type bicepSet []bicepSource

func (s bicepSet) file(t *testing.T, suffix string) string {
	t.Helper()
	for _, src := range s {
		if strings.HasSuffix(src.path, suffix) {
			return src.code
		}
	}
	t.Fatalf("no Bicep file ending in %s", suffix)
	return ""
}

// resourceBody returns the body of the first non-existing resource of the
// given type (without API version) across all files.
func (s bicepSet) resourceBody(t *testing.T, typ string) string {
	t.Helper()
	re := regexp.MustCompile(`(?m)^resource\s+\w+\s+'` + regexp.QuoteMeta(typ) + `@[^']+'\s+=`)
	for _, src := range s {
		if b := block(src.code, re); b != "" {
			return b
		}
	}
	t.Fatalf("no resource of type %s", typ)
	return ""
}

func (s bicepSet) all() string {
	var b strings.Builder
	for _, src := range s {
		b.WriteString(src.code)
		b.WriteByte('\n')
	}
	return b.String()
}

func mustMatch(t *testing.T, what, text, pattern string) {
	t.Helper()
	if !regexp.MustCompile(pattern).MatchString(text) {
		t.Errorf("%s: no match for %s", what, pattern)
	}
}

func mustNotMatch(t *testing.T, what, text, pattern string) {
	t.Helper()
	if m := regexp.MustCompile(pattern).FindString(text); m != "" {
		t.Errorf("%s: unexpected %q", what, m)
	}
}

func TestCosmosKeysDisabled(t *testing.T) {
	s := bicepSet(loadBicep(t))
	body := s.resourceBody(t, "Microsoft.DocumentDB/databaseAccounts")
	mustMatch(t, "Cosmos account", body, `(?m)^\s*disableLocalAuth:\s*true\s*$`)
	mustMatch(t, "Cosmos account", body, `(?m)^\s*disableKeyBasedMetadataWriteAccess:\s*true\s*$`)
	mustNotMatch(t, "Bicep", s.all(), `disableLocalAuth:\s*false`)
	mustNotMatch(t, "Bicep", s.all(), `listConnectionStrings|listKeys\(\)\.primaryMasterKey|primaryMasterKey`)

	container := s.resourceBody(t, "Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers")
	mustMatch(t, "orders container", container, `paths:\s*\[\s*'/customerId'\s*\]`)
}

func TestSiteHardening(t *testing.T) {
	s := bicepSet(loadBicep(t))
	site := s.resourceBody(t, "Microsoft.Web/sites")
	mustMatch(t, "site", site, `(?m)^\s*httpsOnly:\s*true\s*$`)

	fa := s.file(t, "modules/functionapp.bicep")
	common := block(fa, regexp.MustCompile(`var commonSiteConfig\s*=`))
	mustMatch(t, "commonSiteConfig", common, `(?m)^\s*minTlsVersion:\s*'1\.2'\s*$`)
	mustMatch(t, "commonSiteConfig", common, `(?m)^\s*ftpsState:\s*'Disabled'\s*$`)
	// Both plans' site configs are built on commonSiteConfig.
	mustMatch(t, "functionapp.bicep", fa, `var consumptionSiteConfig\s*=\s*union\(commonSiteConfig,`)
	mustMatch(t, "site", site, `(?m)^\s*siteConfig:\s*isConsumption\s*\?\s*consumptionSiteConfig\s*:\s*commonSiteConfig\s*$`)
	mustNotMatch(t, "Bicep", s.all(), `minTlsVersion:\s*'1\.[01]'|ftpsState:\s*'(AllAllowed|FtpsOnly)'`)

	for _, policy := range []string{"ftp", "scm"} {
		mustMatch(t, "functionapp.bicep", fa,
			`(?s)basicPublishingCredentialsPolicies@[^']+'\s*=\s*\{\s*parent:\s*site\s*name:\s*'`+policy+`'\s*properties:\s*\{\s*allow:\s*false`)
	}
}

func TestStorageHardening(t *testing.T) {
	s := bicepSet(loadBicep(t))
	body := s.resourceBody(t, "Microsoft.Storage/storageAccounts")
	mustMatch(t, "storage account", body, `(?m)^\s*allowBlobPublicAccess:\s*false\s*$`)
	mustMatch(t, "storage account", body, `(?m)^\s*minimumTlsVersion:\s*'TLS1_2'\s*$`)
	mustMatch(t, "storage account", body, `(?m)^\s*supportsHttpsTrafficOnly:\s*true\s*$`)
	// Shared keys only where the Linux Consumption content share needs them.
	mustMatch(t, "storage account", body, `(?m)^\s*allowSharedKeyAccess:\s*(false|isConsumption)\s*$`)
}

func TestHostStorageUsesIdentity(t *testing.T) {
	s := bicepSet(loadBicep(t))
	fa := s.file(t, "modules/functionapp.bicep")
	host := block(fa, regexp.MustCompile(`var hostStorageSettings\s*=`))
	keys := objectKeys(host)
	for _, k := range []string{
		"AzureWebJobsStorage__accountName", "AzureWebJobsStorage__blobServiceUri",
		"AzureWebJobsStorage__queueServiceUri", "AzureWebJobsStorage__credential",
		"AzureWebJobsStorage__clientId",
	} {
		if !slices.Contains(keys, k) {
			t.Errorf("hostStorageSettings has no %s (keys: %v)", k, keys)
		}
	}
	mustMatch(t, "hostStorageSettings", host, `AzureWebJobsStorage__credential:\s*'managedidentity'`)
	mustMatch(t, "hostStorageSettings", host, `AzureWebJobsStorage__clientId:\s*identityClientId`)
	// No connection-string form of AzureWebJobsStorage anywhere.
	mustNotMatch(t, "Bicep", s.all(), `(?m)^\s*'?AzureWebJobsStorage'?\s*:`)
	mustMatch(t, "managedSettings", fa, `(?s)var managedSettings\s*=\s*union\([^)]*hostStorageSettings`)
}

// The only key material allowed is the Azure Files connection string Linux
// Consumption requires for its content share (Azure Files over SMB cannot use
// a managed identity), and only on that plan.
func TestAccountKeysOnlyForConsumptionContentShare(t *testing.T) {
	s := bicepSet(loadBicep(t))
	keyUse := regexp.MustCompile(`listKeys\(|AccountKey=|\.keys\[`)
	for _, src := range s {
		for i, line := range strings.Split(src.code, "\n") {
			if !keyUse.MatchString(line) {
				continue
			}
			if !regexp.MustCompile(`^var contentShareConnectionString = isConsumption \?`).MatchString(line) {
				t.Errorf("%s:%d: account key used outside the consumption content-share setting: %s", src.path, i+1, strings.TrimSpace(line))
			}
		}
		for i, line := range strings.Split(src.code, "\n") {
			if strings.Contains(line, "contentShareConnectionString") &&
				!strings.HasPrefix(line, "var contentShareConnectionString =") &&
				!regexp.MustCompile(`^\s*WEBSITE_CONTENTAZUREFILECONNECTIONSTRING:\s*contentShareConnectionString\s*$`).MatchString(line) {
				t.Errorf("%s:%d: contentShareConnectionString used for something else: %s", src.path, i+1, strings.TrimSpace(line))
			}
		}
		mustNotMatch(t, src.path, src.code, `(?m)^output\s+.*(listKeys|AccountKey|ConnectionString\b.*keys)`)
	}
}

// Flex Consumption rejects the settings it replaced with functionAppConfig;
// they may only appear in the consumption-only object, used only on that plan.
func TestPlanSpecificSettings(t *testing.T) {
	s := bicepSet(loadBicep(t))
	fa := s.file(t, "modules/functionapp.bicep")
	consumptionOnly := block(fa, regexp.MustCompile(`var consumptionOnlySettings\s*=`))
	if consumptionOnly == "" {
		t.Fatal("functionapp.bicep has no consumptionOnlySettings object")
	}
	keys := objectKeys(consumptionOnly)
	for _, k := range []string{"FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION", "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING", "WEBSITE_CONTENTSHARE"} {
		if !slices.Contains(keys, k) {
			t.Errorf("consumptionOnlySettings has no %s", k)
		}
	}
	mustMatch(t, "consumptionOnlySettings", consumptionOnly, `FUNCTIONS_WORKER_RUNTIME:\s*'custom'`)
	mustMatch(t, "consumptionOnlySettings", consumptionOnly, `FUNCTIONS_EXTENSION_VERSION:\s*'~4'`)

	outside := strings.Replace(s.all(), consumptionOnly, "", 1)
	for _, k := range []string{"FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION", "WEBSITE_RUN_FROM_PACKAGE", "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING", "WEBSITE_CONTENTSHARE"} {
		mustNotMatch(t, "settings outside consumptionOnlySettings", outside, `(?m)^\s*'?`+k+`'?\s*:`)
	}
	uses := regexp.MustCompile(`consumptionOnlySettings`).FindAllStringIndex(fa, -1)
	if len(uses) != 2 {
		t.Errorf("consumptionOnlySettings referenced %d times, want the declaration and one guarded use", len(uses))
	}
	mustMatch(t, "managedSettings", fa, `isConsumption\s*\?\s*consumptionOnlySettings\s*:\s*\{\}`)

	// Plans and the scale-out limit.
	plan := s.resourceBody(t, "Microsoft.Web/serverfarms")
	mustMatch(t, "plan", plan, `(?s)name:\s*'Y1'\s*tier:\s*'Dynamic'`)
	mustMatch(t, "plan", plan, `(?s)name:\s*'FC1'\s*tier:\s*'FlexConsumption'`)
	mustMatch(t, "plan", plan, `(?m)^\s*reserved:\s*true`)
	consumption := block(fa, regexp.MustCompile(`var consumptionSiteConfig\s*=`))
	mustMatch(t, "consumptionSiteConfig", consumption, `functionAppScaleLimit:\s*scaleOutLimit`)
	mustMatch(t, "consumptionSiteConfig", consumption, `linuxFxVersion:\s*''`)
	flex := block(fa, regexp.MustCompile(`var flexFunctionAppConfig\s*=`))
	mustMatch(t, "flexFunctionAppConfig", flex, `maximumInstanceCount:\s*scaleOutLimit`)
	mustMatch(t, "flexFunctionAppConfig", flex, `(?s)runtime:\s*\{\s*name:\s*'custom'\s*version:\s*'1\.0'`)
	mustMatch(t, "flexFunctionAppConfig", flex, `(?s)type:\s*'blobContainer'.*type:\s*'UserAssignedIdentity'`)
	site := s.resourceBody(t, "Microsoft.Web/sites")
	mustMatch(t, "site", site, `functionAppConfig:\s*isConsumption\s*\?\s*null\s*:\s*flexFunctionAppConfig`)
	main := s.file(t, "main.bicep")
	mustMatch(t, "main.bicep", main, `(?m)^param hostingPlan string = 'consumption'$`)
}

func TestRoleAssignments(t *testing.T) {
	s := bicepSet(loadBicep(t))
	for _, role := range []struct{ name, id, file string }{
		{"Storage Blob Data Owner", "b7e6dc6d-f1e8-4753-8033-0f276bb0955b", "modules/storage.bicep"},
		{"Storage Queue Data Contributor", "974c5e8b-45b9-4653-ba55-5f855dd0fb88", "modules/storage.bicep"},
		{"Storage Table Data Contributor", "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3", "modules/storage.bicep"},
		{"Monitoring Metrics Publisher", "3913510d-42f4-4e42-8a64-420c390055eb", "modules/monitoring.bicep"},
	} {
		code := s.file(t, role.file)
		if !strings.Contains(code, "'"+role.id+"'") {
			t.Errorf("%s: %s (%s) not granted", role.file, role.name, role.id)
		}
		mustMatch(t, role.file, code, `Microsoft\.Authorization/roleAssignments@`)
		mustMatch(t, role.file, code, `subscriptionResourceId\('Microsoft\.Authorization/roleDefinitions',\s*roleId|subscriptionResourceId\('Microsoft\.Authorization/roleDefinitions',\s*\w+RoleId\)`)
	}
	// The identity gets all three storage roles.
	storage := s.file(t, "modules/storage.bicep")
	mustMatch(t, "storage.bicep", storage,
		`for roleId in \[roles\.storageBlobDataOwner, roles\.storageQueueDataContributor, roles\.storageTableDataContributor\]`)

	cosmos := s.file(t, "modules/cosmos.bicep")
	mustMatch(t, "cosmos.bicep", cosmos, `var cosmosDataContributorRoleId = '00000000-0000-0000-0000-000000000002'`)
	assignment := s.resourceBody(t, "Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments")
	// Fully qualified role definition ID inside this account.
	mustMatch(t, "sqlRoleAssignments", assignment, `roleDefinitionId:\s*'\$\{account\.id\}/sqlRoleDefinitions/\$\{cosmosDataContributorRoleId\}'`)
	mustMatch(t, "sqlRoleAssignments", assignment, `scope:\s*account\.id`)
	mustMatch(t, "cosmos.bicep", cosmos, `\[identityPrincipalId, userPrincipalId\]`)

	main := s.file(t, "main.bicep")
	mustMatch(t, "main.bicep", main, `(?s)module cosmos [^\n]*\{.*userPrincipalId:\s*principalId`)
}

func TestAppSettingsTheAppReads(t *testing.T) {
	s := bicepSet(loadBicep(t))
	main := s.file(t, "main.bicep")
	settings := block(main, regexp.MustCompile(`appSettings:\s*`))
	keys := objectKeys(settings)
	for _, k := range []string{"COSMOS_ENDPOINT", "COSMOS_DATABASE", "COSMOS_CONTAINER", "AZURE_CLIENT_ID", "FULFILMENT_API_URL"} {
		if !slices.Contains(keys, k) {
			t.Errorf("app settings have no %s (keys: %v)", k, keys)
		}
	}
	mustMatch(t, "main.bicep", main, `(?m)^param cosmosDatabaseName string = 'sluice'$`)
	mustMatch(t, "main.bicep", main, `(?m)^param cosmosContainerName string = 'orders'$`)
	mustMatch(t, "main.bicep", main, `(?m)^param fulfilmentApiUrl string = ''$`)
	mustMatch(t, "main.bicep", settings, `AZURE_CLIENT_ID:\s*identity\.outputs\.clientId`)

	// Keyless Application Insights.
	fa := s.file(t, "modules/functionapp.bicep")
	mustMatch(t, "functionapp.bicep", fa, `APPLICATIONINSIGHTS_AUTHENTICATION_STRING:\s*'ClientId=\$\{identityClientId\};Authorization=AAD'`)
	mon := s.resourceBody(t, "Microsoft.Insights/components")
	mustMatch(t, "Application Insights", mon, `DisableLocalAuth:\s*keyless`)
	mustMatch(t, "main.bicep", main, `(?m)^param appInsightsKeyless bool = true$`)
}

// Policy settings: one defaults object, overridable by one parameter, every
// entry delivered as an app setting.
func TestPolicySettings(t *testing.T) {
	s := bicepSet(loadBicep(t))
	all := s.all()
	if n := len(regexp.MustCompile(`var policySettingDefaults\s*=`).FindAllString(all, -1)); n != 1 {
		t.Fatalf("policySettingDefaults defined %d times, want exactly once", n)
	}
	main := s.file(t, "main.bicep")
	mustMatch(t, "main.bicep", main, `(?m)^param appPolicySettings object = \{\}$`)
	mustMatch(t, "main.bicep", main, `policySettings:\s*union\(policySettingDefaults, appPolicySettings\)`)
	fa := s.file(t, "modules/functionapp.bicep")
	mustMatch(t, "functionapp.bicep", fa, `toObject\(items\(policySettings\),\s*p => p\.key,\s*p => string\(p\.value\)\)`)
	mustMatch(t, "functionapp.bicep", fa, `(?s)var managedSettings\s*=\s*union\(\s*policyAppSettings,`)

	defaults := objectKeys(block(main, regexp.MustCompile(`var policySettingDefaults\s*=`)))
	reserved := regexp.MustCompile(`^(AzureWebJobs|FUNCTIONS_|WEBSITE_|APPLICATIONINSIGHTS_|COSMOS_(ENDPOINT|DATABASE|CONTAINER)$|AZURE_CLIENT_ID$)`)
	for _, k := range defaults {
		if !regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`).MatchString(k) {
			t.Errorf("policy setting %s: names are upper-case environment variable names", k)
		}
		if reserved.MatchString(k) {
			t.Errorf("policy setting %s collides with a platform or connection setting", k)
		}
	}
	t.Logf("policy settings with defaults: %v", defaults)
}

// A later `azd provision` must not delete settings set by a deploy
// (WEBSITE_RUN_FROM_PACKAGE on Linux Consumption).
func TestProvisionKeepsDeploySettings(t *testing.T) {
	s := bicepSet(loadBicep(t))
	mustNotMatch(t, "Bicep", s.all(), `(?m)^\s*appSettings:\s*\[`)
	var configs []string
	for _, src := range s {
		if regexp.MustCompile(`Microsoft\.Web/sites/config@`).MatchString(src.code) {
			configs = append(configs, src.path)
		}
	}
	if len(configs) != 1 || !strings.HasSuffix(configs[0], "modules/appsettings.bicep") {
		t.Fatalf("sites/config written in %v, want only modules/appsettings.bicep", configs)
	}
	as := s.file(t, "modules/appsettings.bicep")
	mustMatch(t, "appsettings.bicep", as, `resource site 'Microsoft\.Web/sites@[^']+' existing`)
	mustMatch(t, "appsettings.bicep", as, `var currentSettings = list\('\$\{site\.id\}/config/appsettings', '[0-9-]+'\)\.properties`)
	mustMatch(t, "appsettings.bicep", as, `properties:\s*union\(currentSettings, settings\)`)
	fa := s.file(t, "modules/functionapp.bicep")
	mustMatch(t, "functionapp.bicep", fa, `(?s)module settings 'appsettings\.bicep'.*siteName:\s*site\.name.*settings:\s*managedSettings`)
}

// TestPolicyDefaultsMatchLocalSettings keeps the deployed defaults and the local sample in
// step: every setting the sample gives a policy value for is deployed with the same value.
func TestPolicyDefaultsMatchLocalSettings(t *testing.T) {
	s := bicepSet(loadBicep(t))
	main := s.file(t, "main.bicep")
	body := block(main, regexp.MustCompile(`var policySettingDefaults\s*=`))
	deployed := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^\s*([A-Z][A-Z0-9_]*):\s*'([^']*)'`).FindAllStringSubmatch(body, -1) {
		deployed[m[1]] = m[2]
	}
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "local.settings.sample.json"))
	if err != nil {
		t.Fatal(err)
	}
	var sample struct {
		Values map[string]string `json:"Values"`
	}
	if err := json.Unmarshal(raw, &sample); err != nil {
		t.Fatal(err)
	}
	// Connection settings differ between local and Azure on purpose.
	localOnly := regexp.MustCompile(`^(FUNCTIONS_WORKER_RUNTIME|AzureWebJobsStorage|COSMOS_(ENDPOINT|KEY|DATABASE|CONTAINER|CREATE_IF_MISSING)|FULFILMENT_API_URL)$`)
	for k, v := range sample.Values {
		if localOnly.MatchString(k) {
			continue
		}
		got, ok := deployed[k]
		if !ok {
			t.Errorf("%s is in local.settings.sample.json but not deployed by policySettingDefaults", k)
		} else if got != v {
			t.Errorf("%s: deployed default %q, local sample %q", k, got, v)
		}
	}
}
