// Log Analytics workspace and workspace-based Application Insights.
//
// With keyless set, the component refuses instrumentation-key ingestion and
// the app authenticates with its managed identity, which needs Monitoring
// Metrics Publisher on the component.

param location string
param tags object
param workspaceName string
param appInsightsName string
param keyless bool
param identityPrincipalId string

var monitoringMetricsPublisherRoleId = '3913510d-42f4-4e42-8a64-420c390055eb'

// Azure Verified Module: the workspace needs nothing beyond its defaults.
module workspace 'br/public:avm/res/operational-insights/workspace:0.11.1' = {
  name: 'workspace'
  params: {
    name: workspaceName
    location: location
    tags: tags
  }
}

// A raw resource rather than avm/res/insights/component: the properties that
// matter here (DisableLocalAuth, the workspace link) are two lines, and the
// module's parameter names have changed between versions.
resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: appInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.outputs.resourceId
    DisableLocalAuth: keyless
    publicNetworkAccessForIngestion: 'Enabled'
    publicNetworkAccessForQuery: 'Enabled'
  }
}

resource metricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, identityPrincipalId, monitoringMetricsPublisherRoleId)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisherRoleId)
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

output appInsightsName string = appInsights.name
output workspaceName string = workspaceName
// The connection string names the ingestion endpoint; with keyless set the
// key inside it no longer authorizes anything on its own.
output connectionString string = appInsights.properties.ConnectionString
