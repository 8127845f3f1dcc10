// Sluice infrastructure, provisioned by `azd provision` (or `azd up`).
//
// One resource group holding: a Linux function app (custom handler) on the
// Consumption plan by default or Flex Consumption by one parameter, its
// storage account, a user-assigned identity, a Cosmos DB account with the
// `orders` container, and keyless Application Insights.
//
// Nothing here uses account keys except the Azure Files content share that
// Linux Consumption still requires (see modules/functionapp.bicep).
targetScope = 'subscription'

// ---------------------------------------------------------------------------
// azd environment
// ---------------------------------------------------------------------------

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; used in resource names and the azd-env-name tag.')
param environmentName string

@minLength(1)
@description('Azure region for every resource. Flex Consumption is not offered in every region: check `az functionapp list-flexconsumption-locations` before choosing flexconsumption.')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Object ID of the user or service principal running azd (AZURE_PRINCIPAL_ID). It gets Cosmos DB and storage data roles so that local runs and scripts work against the deployed resources. Empty skips those assignments.')
param principalId string = ''

@description('Override the resource group name. Empty means rg-<environmentName>.')
param resourceGroupName string = ''

// ---------------------------------------------------------------------------
// Hosting
// ---------------------------------------------------------------------------

@description('Hosting plan. consumption: Linux Consumption (Y1, Dynamic); retiring 30 Sep 2028. flexconsumption: Flex Consumption (FC1), the plan Microsoft recommends for new apps. Changing this on an existing environment creates a second plan and cannot move the app: use a new azd environment.')
@allowed([
  'consumption'
  'flexconsumption'
])
param hostingPlan string = 'consumption'

@description('Most instances the app scales out to. Consumption: siteConfig.functionAppScaleLimit (Linux Consumption tops out well below 200). Flex: functionAppConfig.scaleAndConcurrency.maximumInstanceCount. Each instance runs up to batchSize + newBatchThreshold queue messages at once (host.json), so this bounds the writes in flight against Cosmos DB.')
@minValue(1)
@maxValue(1000)
param scaleOutLimit int = 10

@description('Flex Consumption only: memory per instance in MB.')
@allowed([
  512
  2048
  4096
])
param flexInstanceMemoryMB int = 2048

// ---------------------------------------------------------------------------
// Cosmos DB
// ---------------------------------------------------------------------------

@description('serverless: pay per request, no RU/s ceiling to set. provisioned: fixed RU/s on the container (cosmosThroughput), or autoscale up to cosmosThroughput when cosmosAutoscale is true.')
@allowed([
  'serverless'
  'provisioned'
])
param cosmosCapacityMode string = 'serverless'

@description('Provisioned mode only: RU/s on the orders container (manual), or the autoscale maximum when cosmosAutoscale is true (then at least 1000).')
@minValue(400)
param cosmosThroughput int = 400

@description('Provisioned mode only: use autoscale throughput with cosmosThroughput as the maximum.')
param cosmosAutoscale bool = false

// ---------------------------------------------------------------------------
// Settings the app reads (names fixed by the application's configuration table)
// ---------------------------------------------------------------------------

@description('COSMOS_DATABASE: database name.')
param cosmosDatabaseName string = 'sluice'

@description('COSMOS_CONTAINER: container name. Its partition key is /customerId.')
param cosmosContainerName string = 'orders'

@description('FULFILMENT_API_URL: base URL of the third-party fulfilment API called by notify. Empty until you have one.')
param fulfilmentApiUrl string = ''

@description('Resilience policy settings as { NAME: value }. Merged over policySettingDefaults below, so only the settings you change need to be listed. Values are converted to strings.')
param appPolicySettings object = {}

@description('Entra-only ingestion for Application Insights (DisableLocalAuth). The app authenticates with its identity through APPLICATIONINSIGHTS_AUTHENTICATION_STRING.')
param appInsightsKeyless bool = true

// The one place the resilience policy settings and their defaults are defined.
// Every key becomes an app setting of the same name; appPolicySettings
// overrides individual values. Keep the names in step with the README's
// configuration table.
var policySettingDefaults = {
  LOG_LEVEL: 'info'
  INVOCATION_SAFETY_MARGIN: '5s'
  HTTP_MAX_BODY_BYTES: '1048576'
  HTTP_SHED_MAX_WAIT: '5ms'
  COSMOS_SDK_MAX_RETRIES: '2'
  COSMOS_SDK_RETRY_DELAY: '200ms'
  COSMOS_SDK_MAX_RETRY_DELAY: '2s'
  COSMOS_SDK_TRY_TIMEOUT: '4s'
  COSMOS_WRITE_MAX_RETRIES: '2'
  COSMOS_THROTTLE_MAX_RETRIES: '9'
  COSMOS_THROTTLE_MAX_WAIT: '30s'
  COSMOS_OPERATION_TIMEOUT: '60s'
  COSMOS_MAX_CONCURRENCY: '16'
  COSMOS_QUEUE_WAIT: '30s'
  COSMOS_WRITE_RATE_INITIAL: '20'
  COSMOS_WRITE_RATE_MIN: '1'
  COSMOS_WRITE_RATE_MAX: '1000'
  COSMOS_WRITE_RATE_GROWTH: '0.05'
  COSMOS_BREAKER_FAILURE_RATE: '0.5'
  COSMOS_BREAKER_MIN_REQUESTS: '10'
  COSMOS_BREAKER_WINDOW: '10s'
  COSMOS_BREAKER_DELAY: '5s'
  COSMOS_BREAKER_SUCCESS_THRESHOLD: '2'
  FULFILMENT_ATTEMPT_TIMEOUT: '10s'
  FULFILMENT_MAX_RETRIES: '3'
  FULFILMENT_MAX_WAIT: '30s'
  FULFILMENT_MAX_CONCURRENCY: '8'
  FULFILMENT_BREAKER_FAILURE_RATE: '0.5'
  FULFILMENT_BREAKER_MIN_REQUESTS: '5'
  FULFILMENT_BREAKER_WINDOW: '30s'
  FULFILMENT_BREAKER_DELAY: '15s'
  FULFILMENT_BREAKER_SUCCESS_THRESHOLD: '1'
  QUEUE_REQUEUE_BASE_DELAY: '5s'
  QUEUE_REQUEUE_MAX_DELAY: '5m'
  QUEUE_RETRY_HORIZON: '1h'
}

// ---------------------------------------------------------------------------
// Names and tags
// ---------------------------------------------------------------------------

var abbrs = {
  resourceGroup: 'rg-'
  functionApp: 'func-'
  appServicePlan: 'plan-'
  storageAccount: 'st'
  cosmosAccount: 'cosmos-'
  managedIdentity: 'id-'
  logAnalytics: 'log-'
  appInsights: 'appi-'
}

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var functionAppName = '${abbrs.functionApp}${resourceToken}'

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: !empty(resourceGroupName) ? resourceGroupName : '${abbrs.resourceGroup}${environmentName}'
  location: location
  tags: tags
}

// Azure Verified Module: plain identity, no properties this template must
// control beyond name, location and tags.
module identity 'br/public:avm/res/managed-identity/user-assigned-identity:0.4.1' = {
  name: 'identity'
  scope: rg
  params: {
    name: '${abbrs.managedIdentity}${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    location: location
    tags: tags
    workspaceName: '${abbrs.logAnalytics}${resourceToken}'
    appInsightsName: '${abbrs.appInsights}${resourceToken}'
    keyless: appInsightsKeyless
    identityPrincipalId: identity.outputs.principalId
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    location: location
    tags: tags
    name: '${abbrs.storageAccount}${resourceToken}'
    hostingPlan: hostingPlan
    contentShareName: take(functionAppName, 63)
    identityPrincipalId: identity.outputs.principalId
    userPrincipalId: principalId
  }
}

module cosmos 'modules/cosmos.bicep' = {
  name: 'cosmos'
  scope: rg
  params: {
    location: location
    tags: tags
    accountName: '${abbrs.cosmosAccount}${resourceToken}'
    databaseName: cosmosDatabaseName
    containerName: cosmosContainerName
    capacityMode: cosmosCapacityMode
    throughput: cosmosThroughput
    autoscale: cosmosAutoscale
    identityPrincipalId: identity.outputs.principalId
    userPrincipalId: principalId
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  scope: rg
  params: {
    location: location
    tags: tags
    name: functionAppName
    planName: '${abbrs.appServicePlan}${resourceToken}'
    hostingPlan: hostingPlan
    scaleOutLimit: scaleOutLimit
    flexInstanceMemoryMB: flexInstanceMemoryMB
    identityResourceId: identity.outputs.resourceId
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerName: storage.outputs.deploymentContainerName
    contentShareName: storage.outputs.contentShareName
    appInsightsConnectionString: monitoring.outputs.connectionString
    appSettings: {
      COSMOS_ENDPOINT: cosmos.outputs.endpoint
      COSMOS_DATABASE: cosmosDatabaseName
      COSMOS_CONTAINER: cosmosContainerName
      AZURE_CLIENT_ID: identity.outputs.clientId
      FULFILMENT_API_URL: fulfilmentApiUrl
    }
    policySettings: union(policySettingDefaults, appPolicySettings)
  }
}

// ---------------------------------------------------------------------------
// Outputs: azd writes these to .azure/<env>/.env
// ---------------------------------------------------------------------------

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output RESOURCE_GROUP string = rg.name
output AZURE_HOSTING_PLAN string = hostingPlan

output AZURE_FUNCTION_NAME string = functionApp.outputs.name
output SERVICE_API_NAME string = functionApp.outputs.name
output SERVICE_API_URI string = functionApp.outputs.uri

// The identity's client ID is deliberately not exported as AZURE_CLIENT_ID:
// tools that load the azd environment would then try to authenticate as the
// app's identity on a developer machine, where it does not exist.
output AZURE_USER_ASSIGNED_IDENTITY_NAME string = identity.outputs.name
output AZURE_USER_ASSIGNED_IDENTITY_CLIENT_ID string = identity.outputs.clientId

output COSMOS_ENDPOINT string = cosmos.outputs.endpoint
output COSMOS_ACCOUNT_NAME string = cosmos.outputs.accountName
output COSMOS_DATABASE string = cosmosDatabaseName
output COSMOS_CONTAINER string = cosmosContainerName

output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_STORAGE_BLOB_ENDPOINT string = storage.outputs.blobEndpoint
output AZURE_STORAGE_QUEUE_ENDPOINT string = storage.outputs.queueEndpoint
output AZURE_STORAGE_TABLE_ENDPOINT string = storage.outputs.tableEndpoint

output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.appInsightsName
output AZURE_LOG_ANALYTICS_WORKSPACE_NAME string = monitoring.outputs.workspaceName
