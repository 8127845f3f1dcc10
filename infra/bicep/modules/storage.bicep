// The function app's storage account: host storage (blobs for keys and
// leases, queues for the orders and notifications pipeline, tables for host
// diagnostics) reached with the managed identity, plus what each plan needs
// to hold the deployed code.

param location string
param tags object
param name string

@allowed([
  'consumption'
  'flexconsumption'
])
param hostingPlan string

@description('Azure Files share for the Linux Consumption content (WEBSITE_CONTENTSHARE).')
param contentShareName string

param identityPrincipalId string
param userPrincipalId string = ''

var isConsumption = hostingPlan == 'consumption'
var deploymentContainerName = 'app-package'

// Built-in role definition IDs.
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
}

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowBlobPublicAccess: false
    // Shared keys stay enabled only on Linux Consumption, whose Azure Files
    // content share cannot use an identity (WEBSITE_CONTENTAZUREFILECONNECTIONSTRING
    // takes a key-based connection string). Everything else, host storage
    // included, uses the managed identity. Flex keeps no share: keys off.
    allowSharedKeyAccess: isConsumption
    defaultToOAuthAuthentication: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
}

// Flex Consumption deploys by writing the package to this container.
resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = if (!isConsumption) {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: account
  name: 'default'
}

// The host creates missing queues on first use; creating them here makes
// them visible (and alertable) before the first order arrives.
resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [
  for queueName in ['orders', 'notifications']: {
    parent: queueService
    name: queueName
  }
]

resource fileService 'Microsoft.Storage/storageAccounts/fileServices@2023-05-01' = if (isConsumption) {
  parent: account
  name: 'default'
}

// Created up front so the platform's content-share validation finds it when
// the app settings are applied after the site exists.
resource contentShare 'Microsoft.Storage/storageAccounts/fileServices/shares@2023-05-01' = if (isConsumption) {
  parent: fileService
  name: contentShareName
}

// The app's identity: blobs for host keys and leases (owner, as the host
// documentation asks), queues for the triggers and output bindings, tables
// for the host's diagnostic events.
resource identityRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for roleId in [roles.storageBlobDataOwner, roles.storageQueueDataContributor, roles.storageTableDataContributor]: {
    name: guid(account.id, identityPrincipalId, roleId)
    scope: account
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
      principalId: identityPrincipalId
      principalType: 'ServicePrincipal'
    }
  }
]

// The deploying user: enough to peek at queues and blobs while debugging.
// principalType is left out because azd may run as a user or, in CI, as a
// service principal.
resource userRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for roleId in (empty(userPrincipalId) ? [] : [roles.storageBlobDataOwner, roles.storageQueueDataContributor]): {
    name: guid(account.id, userPrincipalId, roleId)
    scope: account
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
      principalId: userPrincipalId
    }
  }
]

output name string = account.name
output blobEndpoint string = account.properties.primaryEndpoints.blob
output queueEndpoint string = account.properties.primaryEndpoints.queue
output tableEndpoint string = account.properties.primaryEndpoints.table
output deploymentContainerName string = isConsumption ? '' : deploymentContainerName
output contentShareName string = isConsumption ? contentShareName : ''
