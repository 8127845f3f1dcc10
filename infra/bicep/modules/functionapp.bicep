// The function app: plan, site and app settings for a Go custom handler.
//
// Two hosting plans, chosen by hostingPlan:
//   consumption      Linux Consumption (Y1/Dynamic). Runtime chosen by app
//                    settings (FUNCTIONS_WORKER_RUNTIME=custom,
//                    FUNCTIONS_EXTENSION_VERSION=~4), code in an Azure Files
//                    content share or a run-from-package URL set by the deploy.
//   flexconsumption  Flex Consumption (FC1). Runtime, scale and the
//                    deployment blob container live in functionAppConfig; the
//                    settings above are deprecated there and are not set.

param location string
param tags object
param name string
param planName string

@allowed([
  'consumption'
  'flexconsumption'
])
param hostingPlan string

@minValue(1)
@maxValue(1000)
param scaleOutLimit int

param flexInstanceMemoryMB int

param identityResourceId string
param identityClientId string

param storageAccountName string
@description('Flex only: blob container the deployment package is written to.')
param deploymentContainerName string
@description('Consumption only: Azure Files share for the app content.')
param contentShareName string

param appInsightsConnectionString string

@description('Settings the application reads (COSMOS_*, AZURE_CLIENT_ID, FULFILMENT_API_URL).')
param appSettings object

@description('Resilience policy settings, already merged over their defaults.')
param policySettings object

var isConsumption = hostingPlan == 'consumption'

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: isConsumption
    ? {
        name: 'Y1'
        tier: 'Dynamic'
      }
    : {
        name: 'FC1'
        tier: 'FlexConsumption'
      }
  properties: {
    // Linux.
    reserved: true
  }
}

var commonSiteConfig = {
  minTlsVersion: '1.2'
  ftpsState: 'Disabled'
}

// Linux custom handler: the Functions stacks data gives an empty
// linuxFxVersion for the custom runtime (the host image without a language
// worker) and a 64-bit process.
var consumptionSiteConfig = union(commonSiteConfig, {
  linuxFxVersion: ''
  use32BitWorkerProcess: false
  functionAppScaleLimit: scaleOutLimit
})

var flexFunctionAppConfig = {
  deployment: {
    storage: {
      type: 'blobContainer'
      value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
      authentication: {
        type: 'UserAssignedIdentity'
        userAssignedIdentityResourceId: identityResourceId
      }
    }
  }
  scaleAndConcurrency: {
    // TODO: Flex's documented lower bound for maximumInstanceCount has moved
    // (40 during the preview); if ARM rejects a small scaleOutLimit on Flex,
    // raise it to the bound the error names.
    maximumInstanceCount: scaleOutLimit
    instanceMemoryMB: flexInstanceMemoryMB
  }
  runtime: {
    name: 'custom'
    version: '1.0'
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  // azd finds the deploy target for service `api` by this tag.
  tags: union(tags, {
    'azd-service-name': 'api'
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityResourceId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    reserved: true
    httpsOnly: true
    clientCertEnabled: false
    publicNetworkAccess: 'Enabled'
    // No appSettings here on purpose: see appsettings.bicep.
    siteConfig: isConsumption ? consumptionSiteConfig : commonSiteConfig
    functionAppConfig: isConsumption ? null : flexFunctionAppConfig
  }
}

// Deploys authenticate with Entra ID; publishing-profile passwords are off.
resource ftpBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

// ---------------------------------------------------------------------------
// App settings
// ---------------------------------------------------------------------------

// Host storage through the managed identity (no connection string). The
// queue bindings use "connection": "AzureWebJobsStorage", so they resolve
// the same prefix.
var hostStorageSettings = {
  AzureWebJobsStorage__accountName: storage.name
  AzureWebJobsStorage__blobServiceUri: storage.properties.primaryEndpoints.blob
  AzureWebJobsStorage__queueServiceUri: storage.properties.primaryEndpoints.queue
  AzureWebJobsStorage__tableServiceUri: storage.properties.primaryEndpoints.table
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
}

var monitoringSettings = {
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
}

// The single key-based value in this template. Linux Consumption keeps app
// content in an Azure Files share, and Azure Files (SMB) cannot authenticate
// with a managed identity, so the platform requires a connection string with
// the account key here. Flex Consumption has no content share; there the
// value is empty and never used (and shared keys are off on the account).
var contentShareConnectionString = isConsumption ? 'DefaultEndpointsProtocol=https;AccountName=${storage.name};EndpointSuffix=${environment().suffixes.storage};AccountKey=${storage.listKeys().keys[0].value}' : ''

// Settings Linux Consumption needs and Flex Consumption rejects as deprecated.
// WEBSITE_RUN_FROM_PACKAGE is not set here: the deploy sets it, and
// appsettings.bicep keeps it across later provisions.
var consumptionOnlySettings = {
  FUNCTIONS_WORKER_RUNTIME: 'custom'
  FUNCTIONS_EXTENSION_VERSION: '~4'
  WEBSITE_CONTENTAZUREFILECONNECTIONSTRING: contentShareConnectionString
  WEBSITE_CONTENTSHARE: contentShareName
}

// App settings values are strings; policy values may be given as numbers or
// booleans in the parameters file.
var policyAppSettings = toObject(items(policySettings), p => p.key, p => string(p.value))

// Later objects win, so a policy entry can never replace a platform or
// connection setting.
var managedSettings = union(
  policyAppSettings,
  appSettings,
  hostStorageSettings,
  monitoringSettings,
  isConsumption ? consumptionOnlySettings : {}
)

module settings 'appsettings.bicep' = {
  name: 'appsettings'
  params: {
    siteName: site.name
    settings: managedSettings
  }
}

output name string = site.name
output uri string = 'https://${site.properties.defaultHostName}'
