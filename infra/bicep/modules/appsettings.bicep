// Applies the function app's settings without dropping the ones this
// template does not own.
//
// Why: `Microsoft.Web/sites/config` named `appsettings` (like
// siteConfig.appSettings on the site) replaces the whole set on every
// deployment. On Linux Consumption, `azd deploy` sets WEBSITE_RUN_FROM_PACKAGE
// to the URL of the uploaded package; a later `azd provision` that wrote only
// the settings below would delete it, and the app would restart with no
// functions. So the current settings are read first and the template's
// settings are laid over them: keys this template manages take the new
// value, every other key (set by a deploy, by the portal or by `az`) stays.
//
// Consequence: a setting removed from the template is not removed from the
// app. Delete it with `az functionapp config appsettings delete`.
//
// This runs as its own module so that the site certainly exists when list()
// is evaluated, including on the very first provision.

param siteName string
param settings object

resource site 'Microsoft.Web/sites@2024-04-01' existing = {
  name: siteName
}

var currentSettings = list('${site.id}/config/appsettings', '2024-04-01').properties

resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: site
  name: 'appsettings'
  properties: union(currentSettings, settings)
}
