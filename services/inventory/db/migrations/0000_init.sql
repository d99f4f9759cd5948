CREATE SCHEMA IF NOT EXISTS "inventory";
--> statement-breakpoint
CREATE TABLE "inventory"."attribs" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"barclamp_id" integer NOT NULL,
	"role_id" integer,
	"description" text DEFAULT '' NOT NULL,
	"map" text NOT NULL,
	"schema" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"default_value" jsonb,
	"writable" boolean DEFAULT true NOT NULL,
	CONSTRAINT "attribs_name_unique" UNIQUE("name")
);
--> statement-breakpoint
CREATE TABLE "inventory"."barclamps" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"description" text DEFAULT '' NOT NULL,
	"version" text DEFAULT '0' NOT NULL,
	"source_path" text DEFAULT '' NOT NULL,
	"cfg" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "barclamps_name_unique" UNIQUE("name")
);
--> statement-breakpoint
CREATE TABLE "inventory"."deployment_roles" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"deployment_id" integer NOT NULL,
	"role_id" integer NOT NULL,
	"proposed_data" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"committed_data" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"wall" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "inventory"."deployments" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"description" text DEFAULT '' NOT NULL,
	"parent_id" integer,
	"state" text DEFAULT 'proposed' NOT NULL,
	"system" boolean DEFAULT false NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "deployments_name_unique" UNIQUE("name")
);
--> statement-breakpoint
CREATE TABLE "inventory"."noderole_edges" (
	"parent_id" integer NOT NULL,
	"child_id" integer NOT NULL,
	CONSTRAINT "noderole_edges_parent_id_child_id_pk" PRIMARY KEY("parent_id","child_id")
);
--> statement-breakpoint
CREATE TABLE "inventory"."noderoles" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"node_id" integer NOT NULL,
	"role_id" integer NOT NULL,
	"deployment_id" integer NOT NULL,
	"state" text DEFAULT 'proposed' NOT NULL,
	"cohort" integer DEFAULT 0 NOT NULL,
	"run_count" integer DEFAULT 0 NOT NULL,
	"runlog" text DEFAULT '' NOT NULL,
	"available" boolean DEFAULT true NOT NULL,
	"proposed_data" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"committed_data" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"sysdata" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"wall" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"run_token" text,
	"version" integer DEFAULT 1 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "inventory"."nodes" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"description" text DEFAULT '' NOT NULL,
	"admin" boolean DEFAULT false NOT NULL,
	"system" boolean DEFAULT false NOT NULL,
	"alive" boolean DEFAULT false NOT NULL,
	"available" boolean DEFAULT false NOT NULL,
	"bootenv" text DEFAULT 'sledgehammer' NOT NULL,
	"deployment_id" integer NOT NULL,
	"discovery" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"hint" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"quirks" text[] DEFAULT '{}' NOT NULL,
	"ssh_host_key" text,
	"credential_hash" text,
	"alive_reason" text DEFAULT '' NOT NULL,
	"version" integer DEFAULT 1 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "nodes_name_unique" UNIQUE("name")
);
--> statement-breakpoint
CREATE TABLE "inventory"."outbox" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"subject" text NOT NULL,
	"envelope" jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "inventory"."roles" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"barclamp_id" integer NOT NULL,
	"description" text DEFAULT '' NOT NULL,
	"jig" text NOT NULL,
	"owner" text,
	"flags" text[] DEFAULT '{}' NOT NULL,
	"requires" text[] DEFAULT '{}' NOT NULL,
	"wants_attribs" text[] DEFAULT '{}' NOT NULL,
	"provides" text[] DEFAULT '{}' NOT NULL,
	"conflicts" text[] DEFAULT '{}' NOT NULL,
	"template" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"scripts" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"timeout_seconds" integer DEFAULT 600 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "roles_name_unique" UNIQUE("name")
);
--> statement-breakpoint
ALTER TABLE "inventory"."deployment_roles" ADD CONSTRAINT "deployment_roles_deployment_id_deployments_id_fk" FOREIGN KEY ("deployment_id") REFERENCES "inventory"."deployments"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "inventory"."deployment_roles" ADD CONSTRAINT "deployment_roles_role_id_roles_id_fk" FOREIGN KEY ("role_id") REFERENCES "inventory"."roles"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "inventory"."noderole_edges" ADD CONSTRAINT "noderole_edges_parent_id_noderoles_id_fk" FOREIGN KEY ("parent_id") REFERENCES "inventory"."noderoles"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "inventory"."noderole_edges" ADD CONSTRAINT "noderole_edges_child_id_noderoles_id_fk" FOREIGN KEY ("child_id") REFERENCES "inventory"."noderoles"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "inventory"."noderoles" ADD CONSTRAINT "noderoles_node_id_nodes_id_fk" FOREIGN KEY ("node_id") REFERENCES "inventory"."nodes"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "inventory"."noderoles" ADD CONSTRAINT "noderoles_role_id_roles_id_fk" FOREIGN KEY ("role_id") REFERENCES "inventory"."roles"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "inventory"."noderoles" ADD CONSTRAINT "noderoles_deployment_id_deployments_id_fk" FOREIGN KEY ("deployment_id") REFERENCES "inventory"."deployments"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "inventory"."nodes" ADD CONSTRAINT "nodes_deployment_id_deployments_id_fk" FOREIGN KEY ("deployment_id") REFERENCES "inventory"."deployments"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "inventory"."roles" ADD CONSTRAINT "roles_barclamp_id_barclamps_id_fk" FOREIGN KEY ("barclamp_id") REFERENCES "inventory"."barclamps"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "deployment_roles_pair" ON "inventory"."deployment_roles" USING btree ("deployment_id","role_id");--> statement-breakpoint
CREATE INDEX "deployments_parent" ON "inventory"."deployments" USING btree ("parent_id");--> statement-breakpoint
CREATE INDEX "noderole_edges_child" ON "inventory"."noderole_edges" USING btree ("child_id");--> statement-breakpoint
CREATE UNIQUE INDEX "noderoles_node_role" ON "inventory"."noderoles" USING btree ("node_id","role_id");--> statement-breakpoint
CREATE INDEX "noderoles_state" ON "inventory"."noderoles" USING btree ("state");--> statement-breakpoint
CREATE INDEX "noderoles_deployment" ON "inventory"."noderoles" USING btree ("deployment_id");